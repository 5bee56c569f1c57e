"""The provider gateway end to end: `caracal serve` (SQLite and PostgreSQL) between an agent
holding only mandates and a real provider that records what reaches it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
from tests.conftest import _require_postgres
from tests.runtime.provider_upstream import ProviderUpstream, provider_upstream
from tests.support.cli import Result, run_cli
from tests.support.postgres import scratch_database
from tests.support.runtime import Server, serve

pytestmark = pytest.mark.timeout(180)

API_SECRET = "api-credential-5c1e"
KEY_SECRET = "key-credential-9b2d"
WS = "gw"


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


def scope(provider: str, kind: str, ident: str) -> str:
    return f"provider:{provider}:{kind}:{ident}"


@dataclass
class World:
    server: Server
    upstream: ProviderUpstream
    home: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def issue(self, name: str, provider: str, resources: list[str], actions: list[str]) -> str:
        args = ["mandate", "issue", "--issuer", "alice", "--subject", "agent", "--ttl", "30m"]
        for resource in resources:
            args += ["--resource", scope(provider, "resource", resource)]
        for action in actions:
            args += ["--action", scope(provider, "action", action)]
        self.tokens[name] = str(ok(run_cli(*args, "--json")).json()["token"])
        return self.tokens[name]

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        content: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return httpx.request(
            method, self.server.url + path, headers=sent, content=content, timeout=60
        )


def events() -> list[dict[str, Any]]:
    with Caracal.open(WS) as app:
        return app.ledger.events(LedgerFilter(), limit=None)


def decision(decision_id: str) -> dict[str, Any]:
    found = [e for e in events() if e["payload"].get("decision_id") == decision_id]
    assert len(found) == 1, (decision_id, found)
    return found[0]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("gateway") / "home"
    with pytest.MonkeyPatch.context() as env, contextlib.ExitStack() as stack:
        env.setenv("CARACAL_HOME", str(home))
        env.setenv("CARACAL_KEYRING", "off")
        env.setenv("API_TOKEN", API_SECRET)
        env.setenv("KEY_TOKEN", KEY_SECRET)
        for var in ("CARACAL_WORKSPACE", "CARACAL_STORE_URL", "CARACAL_MASTER_KEY"):
            env.delenv(var, raising=False)
        env.delenv("CARACAL_REDIS_URL", raising=False)
        if request.param == "postgresql":
            _require_postgres()
            env.setenv("CARACAL_STORE_URL", stack.enter_context(scratch_database()))
        upstream = stack.enter_context(provider_upstream())
        ok(run_cli("workspace", "create", WS))
        ok(run_cli("config", "set", "runtime.gateway.read_timeout_seconds", "2"))
        ok(run_cli("config", "set", "runtime.gateway.max_body_bytes", str(200 * 1024**2)))
        ok(run_cli("config", "set", "runtime.gateway.passthrough", "open"))
        ok(
            run_cli(
                "provider", "add", "api", "--base-url", upstream.url + "/base",
                "--auth", "bearer", "--credential-env", "API_TOKEN",
                "--resource", "repos", "--resource", "files",
                "--action", "repos:read:GET:/repos",
                "--action", "repos:readme:GET:/repos/readme",
                "--action", "repos:write:POST:/repos",
                "--action", "files:upload:PUT:/files",
                "--action", "files:download:GET:/files",
                "--action", "files:events:GET:/events",
                "--action", "files:slow:GET:/slow",
                "--action", "files:redirect:GET:/redirect",
                "--action", "files:echo:GET:/echo-credential",
            )
        )  # fmt: skip
        ok(
            run_cli(
                "provider", "add", "keyed", "--base-url", upstream.url + "/keyed",
                "--auth", "api-key", "--header-name", "X-Api-Key",
                "--credential-env", "KEY_TOKEN",
                "--resource", "things", "--action", "things:list:GET:/things",
            )
        )  # fmt: skip
        ok(
            run_cli(
                "provider", "add", "queried", "--base-url", upstream.url + "/queried",
                "--auth", "api-key-query", "--header-name", "key",
                "--credential-env", "KEY_TOKEN",
                "--resource", "things", "--action", "things:list:GET:/things",
            )
        )  # fmt: skip
        # By host name: a cookie jar would keep cookies of a named host (never of an address).
        named = upstream.url.replace("127.0.0.1", "localhost")
        ok(run_cli("provider", "add", "cookies", "--base-url", named + "/cookies",
                   "--resource", "jar", "--action", "jar:get:GET:/"))  # fmt: skip
        ok(run_cli("provider", "add", "open", "--base-url", upstream.url + "/open"))
        ok(run_cli("provider", "add", "closed", "--base-url", upstream.url + "/closed"))
        ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
        ok(run_cli("principal", "register", "--kind", "worker", "--name", "agent"))
        policy = ["policy", "create", "--principal", "agent", "--max-validity", "1h"]
        for provider in ("api", "keyed", "queried", "open", "closed", "cookies"):
            policy += ["--resource", scope(provider, "resource", "*")]
            policy += ["--action", scope(provider, "action", "*")]
        ok(run_cli(*policy))
        server = stack.enter_context(serve())
        world = World(server, upstream, home)
        world.issue("reader", "api", ["repos"], ["read"])
        world.issue(
            "files", "api", ["files"], ["upload", "download", "events", "slow", "redirect", "echo"]
        )
        world.issue("keyed", "keyed", ["things"], ["list"])
        world.issue("queried", "queried", ["things"], ["list"])
        world.issue("open", "open", ["all"], ["all"])
        world.issue("closed", "closed", ["all"], ["all"])
        world.issue("cookies", "cookies", ["jar"], ["get"])
        yield world


def _unreached(world: World, before: int) -> None:
    assert len(world.upstream.received) == before, "a refused call reached the provider"


def test_an_allowed_call_reaches_the_provider_with_its_credential_not_the_mandate(
    world: World,
) -> None:
    before = len(world.upstream.received)
    reply = world.call(
        "GET",
        "/v1/providers/api/repos/caracal?page=2",
        world.tokens["reader"],
        headers={"X-Caracal-Caller": "agent", "X-Trace": "t-1", "Connection": "X-Trace"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"ok": True, "path": "/base/repos/caracal"}
    decision_id = reply.headers["x-caracal-decision"]
    (got,) = world.upstream.received[before:]
    assert (got.method, got.path, got.query) == ("GET", "/base/repos/caracal", "page=2")
    assert got.headers["authorization"] == f"Bearer {API_SECRET}"
    assert world.tokens["reader"] not in json.dumps(got.headers)
    assert not any(h.startswith("x-caracal-") for h in got.headers)
    assert "x-trace" not in got.headers  # named by Connection: hop-by-hop
    recorded = decision(decision_id)
    assert recorded["type"] == "validation.allowed"
    assert recorded["payload"]["action"] == "provider:api:action:read"
    assert recorded["payload"]["resource"] == "provider:api:resource:repos"
    assert API_SECRET not in json.dumps(events())


def test_an_api_key_provider_gets_its_key_in_its_header(world: World) -> None:
    before = len(world.upstream.received)
    reply = world.call(
        "GET",
        "/v1/providers/keyed/things",
        world.tokens["keyed"],
        headers={"X-Api-Key": "forged-by-agent"},
    )
    assert reply.status_code == 200, reply.text
    (got,) = world.upstream.received[before:]
    assert got.headers["x-api-key"] == KEY_SECRET
    assert "authorization" not in got.headers


def test_an_api_key_query_provider_gets_its_key_in_the_query(world: World) -> None:
    before = len(world.upstream.received)
    reply = world.call(
        "GET", "/v1/providers/queried/things?key=forged&page=3", world.tokens["queried"]
    )
    assert reply.status_code == 200, reply.text
    (got,) = world.upstream.received[before:]
    assert (got.path, got.query) == ("/queried/things", f"page=3&key={KEY_SECRET}")
    assert "authorization" not in got.headers


def test_the_longest_declared_prefix_decides_and_denials_never_reach_the_provider(
    world: World,
) -> None:
    before = len(world.upstream.received)
    # `/repos/readme` is its own action: a mandate for read does not cover it.
    reply = world.call("GET", "/v1/providers/api/repos/readme/x", world.tokens["reader"])
    assert reply.status_code == 403
    assert reply.json()["reason_code"] == "ACTION_OUT_OF_SCOPE"
    recorded = decision(reply.headers["x-caracal-decision"])
    assert recorded["type"] == "validation.denied"
    assert recorded["payload"]["action"] == "provider:api:action:readme"
    # POST /repos is declared (write) but not granted.
    reply = world.call("POST", "/v1/providers/api/repos", world.tokens["reader"], content=b"{}")
    assert reply.status_code == 403
    assert reply.json()["reason_code"] == "ACTION_OUT_OF_SCOPE"
    _unreached(world, before)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/providers/api/repos/x"),  # no DELETE declared
        ("GET", "/v1/providers/api/reposx"),  # a prefix covers segments, not characters
        ("GET", "/v1/providers/api/admin"),
        ("GET", "/v1/providers/api/repos/../admin"),
        ("GET", "/v1/providers/api/repos/%2e%2e/admin"),
        ("GET", "/v1/providers/api/repos%2F..%2Fadmin"),
    ],
)
def test_an_undeclared_call_is_refused_recorded_and_never_sent(
    world: World, method: str, path: str
) -> None:
    before = len(world.upstream.received)
    reply = world.call(method, path, world.tokens["reader"])
    assert reply.status_code == 403, reply.text
    body = reply.json()
    assert body["reason_code"] == "ACTION_NOT_DECLARED"
    recorded = decision(reply.headers["x-caracal-decision"])
    assert recorded["reason_code"] == "ACTION_NOT_DECLARED"
    assert recorded["mandate_id"] is not None
    assert world.tokens["reader"] not in json.dumps(recorded)
    _unreached(world, before)


def test_missing_and_malformed_tokens_are_refused_and_counted_in_the_ledger(
    world: World,
) -> None:
    before = len(world.upstream.received)
    missing = world.call("GET", "/v1/providers/api/repos/x")
    assert missing.status_code == 401
    assert missing.json()["reason_code"] == "TOKEN_MISSING"
    malformed = world.call("GET", "/v1/providers/api/repos/x", "not.a.mandate")
    assert malformed.status_code == 401
    assert malformed.json()["reason_code"] == "TOKEN_MALFORMED"
    assert missing.headers["x-caracal-decision"] and malformed.headers["x-caracal-decision"]
    _unreached(world, before)
    wanted = {missing.headers["x-caracal-decision"], malformed.headers["x-caracal-decision"]}
    deadline = time.monotonic() + 60
    while True:  # aggregated denials are flushed at the end of their interval
        found = {
            e["payload"].get("decision_id")
            for e in events()
            if e["type"] == "validation.denials_aggregated"
        }
        if wanted <= found:
            break
        assert time.monotonic() < deadline, f"not recorded: {wanted - found}"
        time.sleep(0.5)


def test_passthrough_providers_need_the_operators_opt_in_and_a_whole_provider_mandate(
    world: World,
) -> None:
    before = len(world.upstream.received)
    closed = world.call("GET", "/v1/providers/closed/anything", world.tokens["closed"])
    assert closed.status_code == 403
    assert closed.json()["reason_code"] == "PASSTHROUGH_NOT_ENABLED"
    assert decision(closed.headers["x-caracal-decision"])["reason_code"] == (
        "PASSTHROUGH_NOT_ENABLED"
    )
    wrong = world.call("GET", "/v1/providers/open/anything", world.tokens["reader"])
    assert wrong.status_code == 403
    _unreached(world, before)
    opened = world.call("PATCH", "/v1/providers/open/any/path", world.tokens["open"], content=b"x")
    assert opened.status_code == 200, opened.text
    (got,) = world.upstream.received[before:]
    assert (got.method, got.path, got.body_bytes) == ("PATCH", "/open/any/path", 1)
    unknown = world.call("GET", "/v1/providers/nobody/x", world.tokens["reader"])
    assert unknown.status_code == 404
    assert unknown.json()["reason_code"] == "PROVIDER_UNKNOWN"


def test_redirects_are_returned_not_followed_and_a_silent_provider_is_a_named_504(
    world: World,
) -> None:
    token = world.tokens["files"]
    before = len(world.upstream.received)
    moved = world.call("GET", "/v1/providers/api/redirect", token)
    assert moved.status_code == 302
    assert moved.headers["location"] == "http://127.0.0.1:9/elsewhere"
    assert len(world.upstream.received) == before + 1
    slow = world.call("GET", "/v1/providers/api/slow", token)
    assert slow.status_code == 504
    assert slow.json()["error"] == "upstream_timeout"
    assert slow.headers["x-caracal-decision"]


def test_a_provider_echoing_the_credential_does_not_hand_it_to_the_agent(world: World) -> None:
    reply = world.call("GET", "/v1/providers/api/echo-credential", world.tokens["files"])
    assert reply.status_code == 200
    assert "x-seen" not in reply.headers
    assert API_SECRET not in str(reply.headers)


def test_a_cookie_one_call_got_is_never_sent_on_a_later_call(world: World) -> None:
    """The gateway is one client for every agent: a cookie it kept from one agent's answer
    would go out with the next agent's call."""
    first = world.call("GET", "/v1/providers/cookies/set-cookie", world.tokens["cookies"])
    assert first.status_code == 200, first.text
    assert "session=for-whoever-called-first" in first.headers["set-cookie"]  # the agent's own
    before = len(world.upstream.received)
    second = world.call("GET", "/v1/providers/cookies/later", world.tokens["cookies"])
    assert second.status_code == 200, second.text
    (got,) = world.upstream.received[before:]
    assert "cookie" not in got.headers


def test_server_sent_events_pass_through_as_they_are_sent(world: World) -> None:
    world.upstream.sse_ack.clear()
    headers = {"Authorization": f"Bearer {world.tokens['files']}"}
    url = world.server.url + "/v1/providers/api/events"
    lines: list[str] = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line:
                lines.append(line)
            if line == "data: first":
                world.upstream.sse_ack.set()  # only now does the provider send the second
    assert lines == ["data: first", "data: second"]


def _rss_peak(server: Server) -> int:
    text = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(x for x in text.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_100_mb_body_streams_both_ways_with_flat_memory(world: World) -> None:
    token = world.tokens["files"]
    total = 100 * 1024 * 1024
    world.call("PUT", "/v1/providers/api/files/warm", token, content=b"x" * 1024)
    peak = _rss_peak(world.server)

    def body() -> Iterator[bytes]:
        block = b"y" * (1024 * 1024)
        for _ in range(total // len(block)):
            yield block

    before = len(world.upstream.received)
    reply = world.call(
        "PUT",
        "/v1/providers/api/files/big",
        token,
        content=body(),
        headers={"Content-Length": str(total)},
    )
    assert reply.status_code == 200, reply.text
    assert world.upstream.received[before].body_bytes == total
    received = 0
    headers = {"Authorization": f"Bearer {token}"}
    url = world.server.url + f"/v1/providers/api/files/download?bytes={total}"
    with httpx.stream("GET", url, headers=headers, timeout=60) as down:
        assert down.status_code == 200
        for chunk in down.iter_raw():
            received += len(chunk)
    assert received == total
    grown = _rss_peak(world.server) - peak
    assert grown < 40 * 1024 * 1024, f"the server's peak RSS grew by {grown // 1024} KiB"


def test_a_call_that_cannot_be_decided_is_refused_not_forwarded() -> None:
    import asyncio
    from types import SimpleNamespace

    from caracal.server.gateway import ProviderGateway

    def broken(_client: str) -> None:
        raise RuntimeError("store went away")

    runtime = SimpleNamespace(authorizer=SimpleNamespace(admit=broken))
    gateway = ProviderGateway(runtime)  # type: ignore[arg-type]
    verdict = asyncio.run(
        gateway.judge(
            provider="api",
            method="GET",
            path="/repos",
            raw_path="/repos",
            headers={"authorization": "Bearer x.y.z"},
            client="127.0.0.1",
            source="gateway",
        )
    )
    assert (verdict.status, verdict.reason_code, verdict.target) == (503, "INTERNAL_ERROR", None)


def test_a_client_over_its_budget_of_unusable_tokens_gets_429_whatever_it_calls(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a client has spent its budget of denials no key can be tied to, every gateway call
    it makes is refused with 429 and Retry-After before anything is routed or decided (a
    declared path, an undeclared one, an unknown provider alike) and nothing reaches the
    provider; once the budget refills, its mandate is honoured again."""
    monkeypatch.delenv("CARACAL_REDIS_URL", raising=False)
    monkeypatch.setenv("API_TOKEN", API_SECRET)
    with provider_upstream() as upstream:
        ok(run_cli("workspace", "create", "limits"))
        ok(
            run_cli(
                "provider", "add", "api", "--base-url", upstream.url + "/base",
                "--auth", "bearer", "--credential-env", "API_TOKEN",
                "--resource", "repos", "--action", "repos:read:GET:/repos",
            )
        )  # fmt: skip
        ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
        ok(run_cli("principal", "register", "--kind", "worker", "--name", "agent"))
        ok(
            run_cli(
                "policy", "create", "--principal", "agent", "--max-validity", "1h",
                "--resource", scope("api", "resource", "*"),
                "--action", scope("api", "action", "*"),
            )
        )  # fmt: skip
        # Three unusable tokens spend the budget; one more is earned every 4 s.
        ok(run_cli("config", "set", "runtime.anonymous_denials.per_client_per_second", "0.25"))
        ok(run_cli("config", "set", "runtime.anonymous_denials.burst", "3"))
        with serve() as server:
            world = World(server, upstream, home)
            token = world.issue("reader", "api", ["repos"], ["read"])
            replies = [world.call("GET", "/v1/providers/api/repos", "not.a.mandate")]
            while replies[-1].status_code == 401 and len(replies) < 10:
                replies.append(world.call("GET", "/v1/providers/api/repos", "not.a.mandate"))
            statuses = [r.status_code for r in replies]
            assert statuses == [401, 401, 401, 429], statuses
            over = [
                replies[-1],
                world.call("GET", "/v1/providers/api/repos", token),
                world.call("DELETE", "/v1/providers/api/undeclared", token),
                world.call("GET", "/v1/providers/nowhere/repos", "not.a.mandate"),
            ]
            for reply in over:
                assert reply.status_code == 429, (reply.status_code, reply.text)
                assert reply.json()["error"] == "rate_limited"
                assert int(reply.headers["retry-after"]) >= 1
                assert reply.headers["x-caracal-decision"] == ""
            assert upstream.received == []
            time.sleep(int(over[-1].headers["retry-after"]) + 0.5)
            allowed = world.call("GET", "/v1/providers/api/repos", token)
            assert allowed.status_code == 200, allowed.text
            assert len(upstream.received) == 1
