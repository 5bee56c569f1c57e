"""`POST /v1/authorize`, `/health` and `/metrics` on a real `caracal serve` process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caracal.services.facade import Caracal
from caracal.services.ledger import LedgerFilter
from tests.support.cli import run_cli
from tests.support.runtime import Server, free_port, serve

READ = "provider:github:action:read"
WRITE = "provider:github:action:write"
REPOS = "provider:github:resource:repos"


def make_workspace(name: str) -> str:
    """A workspace with one mandate alice → orch for read on repos; returns its token."""
    run_cli("workspace", "create", name)
    run_cli(
        "-w",
        name,
        "provider",
        "add",
        "github",
        "--base-url",
        "https://api.github.com",
        "--resource",
        "repos",
        "--action",
        "repos:read",
        "--action",
        "repos:write",
    )
    run_cli("-w", name, "principal", "register", "--kind", "human", "--name", "alice")
    run_cli("-w", name, "principal", "register", "--kind", "orchestrator", "--name", "orch")
    run_cli(
        "-w",
        name,
        "policy",
        "create",
        "--principal",
        "orch",
        "--max-validity",
        "1h",
        "--resource",
        "provider:github:resource:*",
        "--action",
        "provider:github:action:*",
    )
    issued = run_cli(
        "-w",
        name,
        "mandate",
        "issue",
        "--issuer",
        "alice",
        "--subject",
        "orch",
        "--ttl",
        "30m",
        "--resource",
        REPOS,
        "--action",
        READ,
        "--json",
    )
    assert issued.code == 0, issued
    return str(issued.json()["token"])


@pytest.fixture
def world(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.delenv("CARACAL_REDIS_URL", raising=False)
    token = make_workspace("demo")
    with serve() as server:
        yield {"server": server, "token": token}


def ledger_events() -> list[dict[str, Any]]:
    with Caracal.open("demo") as app:
        return app.ledger.events(LedgerFilter(), limit=None)


def test_an_allowed_decision_is_answered_and_recorded(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    reply = server.authorize(token=world["token"], action=READ, resource=REPOS)
    assert reply.status == 200, reply
    body = reply.json()
    assert body["allowed"] is True and body["mandate_id"].startswith("mnd_")
    recorded = [e for e in ledger_events() if e["type"] == "validation.allowed"]
    assert len(recorded) == 1
    assert recorded[0]["payload"]["decision_id"] == body["decision_id"]
    assert recorded[0]["mandate_id"] == body["mandate_id"]
    assert world["token"] not in json.dumps(recorded)


def test_a_denial_is_403_with_its_reason_and_recorded(world: dict[str, Any]) -> None:
    server: Server = world["server"]
    reply = server.authorize(token=world["token"], action=WRITE, resource=REPOS, caller="orch")
    assert reply.status == 403
    body = reply.json()
    assert body["allowed"] is False and body["reason_code"] == "ACTION_OUT_OF_SCOPE"
    assert WRITE in body["reason"]
    denied = [e for e in ledger_events() if e["type"] == "validation.denied"]
    assert [e["payload"]["decision_id"] for e in denied] == [body["decision_id"]]
    tampered = world["token"][:-4] + ("AAAA" if not world["token"].endswith("AAAA") else "BBBB")
    assert server.authorize(token=tampered, action=READ, resource=REPOS).json()["reason_code"] in {
        "SIGNATURE_INVALID",
        "TOKEN_MALFORMED",
    }
    assert (
        server.authorize(token=world["token"], action=READ, resource=REPOS, caller="alice").json()[
            "reason_code"
        ]
        == "CALLER_MISMATCH"
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"token": 5, "action": "a", "resource": "r"}', 400, "token"),
        (b'{"token": "t", "resource": "r"}', 400, "action"),
        (b'{"token": "t", "action": "", "resource": "r"}', 400, "action"),
        (b'{"token": "t", "action": "a", "resource": ["r"]}', 400, "resource"),
        (b'{"token": "t", "action": "a", "resource": "r", "caller": 7}', 400, "caller"),
        (b'{"token": "t", "action": "a", "resource": "r", "admin": true}', 400, "admin"),
        (b'{"token": "t", "action": "a", "resource": "r", "intent": NaN}', 400, None),
    ],
)
def test_malformed_bodies_are_400_naming_the_field_and_record_nothing(
    world: dict[str, Any], body: bytes, status: int, field: str | None
) -> None:
    server: Server = world["server"]
    before = len(ledger_events())
    reply = server.request("POST", "/v1/authorize", body, {"Content-Type": "application/json"})
    assert reply.status == status, reply
    assert reply.json()["error"] == "invalid_request" and reply.json()["field"] == field
    assert len(ledger_events()) == before


def test_huge_bodies_are_refused_with_413_not_a_reset(world: dict[str, Any]) -> None:
    """The refusal reaches the client even while it is still sending: the rest of a refused
    body is read and dropped, never buffered (answering and closing mid-upload made the
    client's kernel report a reset about one time in ten)."""
    server: Server = world["server"]
    huge = json.dumps({"token": "x" * 200_000, "action": READ, "resource": REPOS}).encode()
    for _ in range(15):
        reply = server.request("POST", "/v1/authorize", huge, {"Content-Type": "application/json"})
        assert reply.status == 413 and reply.json()["error"] == "payload_too_large"
        # Without a Content-Length (chunked), the cap holds while streaming.
        chunks = iter([huge[i : i + 8192] for i in range(0, len(huge), 8192)])
        reply = server.request("POST", "/v1/authorize", chunks, {"Transfer-Encoding": "chunked"})  # type: ignore[arg-type]
        assert reply.status == 413
    assert server.authorize(token=world["token"], action=READ, resource=REPOS).status == 200


def test_a_token_of_another_workspace_is_denied_and_only_that_recorded(
    world: dict[str, Any],
) -> None:
    server: Server = world["server"]
    foreign = make_workspace("other")
    before = len(ledger_events())
    reply = server.authorize(token=foreign, action=READ, resource=REPOS)
    assert reply.status == 403 and reply.json()["reason_code"] == "WORKSPACE_MISMATCH"
    after = ledger_events()
    assert len(after) == before + 1 and after[0]["reason_code"] == "WORKSPACE_MISMATCH"


def test_revocation_through_the_cli_is_honoured_at_once_without_redis(
    world: dict[str, Any],
) -> None:
    server: Server = world["server"]
    assert server.authorize(token=world["token"], action=READ, resource=REPOS).status == 200
    mandate_id = server.authorize(token=world["token"], action=READ, resource=REPOS).json()[
        "mandate_id"
    ]
    assert run_cli("mandate", "revoke", mandate_id, "--yes").code == 0
    reply = server.authorize(token=world["token"], action=READ, resource=REPOS)
    assert reply.status == 403 and reply.json()["reason_code"] == "MANDATE_REVOKED"


def test_metrics_count_decisions_by_reason_and_expose_the_ledger_lag(
    world: dict[str, Any],
) -> None:
    server: Server = world["server"]
    server.authorize(token=world["token"], action=READ, resource=REPOS)
    server.authorize(token=world["token"], action=WRITE, resource=REPOS)
    server.request("POST", "/v1/authorize", b"{", {})
    text = server.request("GET", "/metrics").body.decode()
    assert 'caracal_decisions_total{reason_code="ALLOWED"} 1' in text
    assert 'caracal_decisions_total{reason_code="ACTION_OUT_OF_SCOPE"} 1' in text
    assert 'caracal_requests_rejected_total{status="400"} 1' in text
    assert "caracal_ledger_lag_events 0" in text
    assert 'caracal_decision_seconds_bucket{le="+Inf"} 2' in text


def test_health_names_a_failing_dependency(home: Path) -> None:
    make_workspace("demo")
    with serve() as server:
        healthy = server.request("GET", "/health")
        assert healthy.status == 200 and healthy.json()["dependencies"]["store"]["ok"]
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve({"CARACAL_REDIS_URL": dead}) as server:
        reply = server.request("GET", "/health")
        assert reply.status == 503 and reply.json()["failing"] == ["redis"]


def test_serve_starts_with_zero_configuration_on_the_active_workspace(home: Path) -> None:
    token = make_workspace("demo")
    with serve() as server:
        assert server.authorize(token=token, action=READ, resource=REPOS).status == 200
        assert "serving workspace demo" in server.log.read_text()
