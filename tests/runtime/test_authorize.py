"""`POST /v1/authorize`, `/health` and `/metrics` on a real `caracal serve` process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
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
        # One strict reader for all JSON from outside: a duplicated key is never read as
        # "the last one wins" (it was, here, while tokens and the MCP gate refused it).
        (b'{"token": "t", "action": "write", "action": "read", "resource": "r"}', 400, "action"),
        (
            b'{"token": "t", "action": "a", "resource": "r", "intent": {"x": 1, "x": 2}}',
            400,
            "intent",
        ),
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
    assert reply.status == 401 and reply.json()["reason_code"] == "WORKSPACE_MISMATCH"
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
    assert reply.status == 401 and reply.json()["reason_code"] == "MANDATE_REVOKED"


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


# ---- issue 13 ------------------------------------------------------------------------------
def test_a_duplicated_field_is_refused_naming_it_even_with_a_valid_token(
    world: dict[str, Any],
) -> None:
    server: Server = world["server"]
    fields = f'"token": "{world["token"]}", "action": "{WRITE}", "action": "{READ}"'
    body = ("{" + fields + f', "resource": "{REPOS}"' + "}").encode()
    reply = server.request("POST", "/v1/authorize", body, {"Content-Type": "application/json"})
    assert reply.status == 400, reply
    assert reply.json()["field"] == "action" and "duplicate key 'action'" in reply.json()["message"]
    assert [e for e in ledger_events() if e["type"].startswith("validation.")] == []


def _set(key: str, value: str) -> None:
    result = run_cli("-w", "demo", "config", "set", key, value)
    assert result.code == 0, result


def _wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_unattributable_denials_are_recorded_in_aggregate_and_limited_per_client(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Garbage tokens used to add one ~1 KB ledger event each, for anyone who could reach the
    runtime. Now: one event per reason and client per interval, with the count; a client over
    its budget gets 429 (counted too); real mandates still get one event per decision."""
    monkeypatch.delenv("CARACAL_REDIS_URL", raising=False)
    token = make_workspace("demo")
    _set("runtime.anonymous_denials.interval_seconds", "1")
    _set("runtime.anonymous_denials.per_client_per_second", "4")
    _set("runtime.anonymous_denials.burst", "20")
    with serve() as server:
        before = len(ledger_events())
        replies = [
            server.authorize(token=f"garbage-{i}", action=READ, resource=REPOS) for i in range(60)
        ]
        replies.append(server.authorize(action=READ, resource=REPOS, token=""))  # 400: required
        statuses = [r.status for r in replies]
        denied = [r for r in replies if r.status == 401]
        limited = [r for r in replies if r.status == 429]
        assert 20 <= len(denied) < 40 and len(limited) >= 20, statuses
        assert {r.json()["reason_code"] for r in denied} == {"TOKEN_MALFORMED"}
        assert len({r.json()["decision_id"] for r in denied}) <= 3  # one per interval
        assert limited[0].json()["error"] == "rate_limited" and "retry-after" in limited[0].headers
        time.sleep(1.0)  # the budget refills: a real mandate from the same client is decided
        allowed = server.authorize(token=token, action=READ, resource=REPOS)
        assert allowed.status == 200, allowed

        def aggregated() -> list[dict[str, Any]]:
            found = [e for e in ledger_events() if e["type"] == "validation.denials_aggregated"]
            counted = sum(e["payload"]["count"] for e in found)
            return found if counted == len(denied) + len(limited) else []

        events = _wait_for(aggregated)
        assert events, [e["type"] for e in ledger_events()]
        metrics = server.request("GET", "/metrics").body.decode()
    by_reason: dict[str, int] = {}
    for event in events:
        assert event["payload"]["client"] == "127.0.0.1"
        by_reason[event["reason_code"]] = (
            by_reason.get(event["reason_code"], 0) + (event["payload"]["count"])
        )
    assert by_reason == {"TOKEN_MALFORMED": len(denied), "RATE_LIMITED": len(limited)}
    new = ledger_events()[: len(ledger_events()) - before]
    assert len(new) <= len(events) + 1 + 2  # the aggregates, the allowed decision, heads
    assert [e["type"] for e in new].count("validation.allowed") == 1
    assert f"caracal_anonymous_denials_total {len(denied)}" in metrics
    assert f"caracal_rate_limited_total {len(limited)}" in metrics


def test_health_never_echoes_configuration_and_honours_the_configured_redis_password(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/health` printed the `${VAR}`-expanded Redis URL, password included, and only the
    environment's URL lent Redis its password."""
    import shutil
    import subprocess

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    for variable in ("CARACAL_REDIS_URL", "CARACAL_REDIS_PASSWORD_FILE"):
        monkeypatch.delenv(variable, raising=False)
    make_workspace("demo")
    password, port = "pw-" + os.urandom(8).hex(), free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--requirepass", password, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        monkeypatch.setenv("TEST_REDIS_URL", f"redis://:{password}@127.0.0.1:{port}/0")
        _set("runtime.redis_url", "${TEST_REDIS_URL}")
        secrets = (password, "127.0.0.1:", str(port), "redis://")
        with serve() as server:
            reply = _wait_for(lambda: (r := server.request("GET", "/health")).status == 200 and r)
            assert reply, server.request("GET", "/health").body
            assert reply.json()["dependencies"]["redis"] == {"ok": True, "detail": "reachable"}
            text = reply.body.decode()
            assert not [s for s in secrets if s in text], text
        monkeypatch.setenv("TEST_REDIS_URL", f"redis://:{password}@127.0.0.1:{free_port()}/0")
        with serve() as server:
            reply = server.request("GET", "/health")
            assert reply.status == 503 and reply.json()["failing"] == ["redis"]
            text = reply.body.decode()
            assert not [s for s in (*secrets, password) if s in text], text
    finally:
        redis.terminate()
        redis.wait(10)
