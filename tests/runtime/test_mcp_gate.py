"""The MCP gate end to end: the official MCP SDK on both sides (an `MCPServer` upstream that
records every call, a `ClientSession` agent), `caracal serve` in between, and a workspace
built through the real CLI."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from caracal.server.mcp_gate import McpGate
from caracal.server.outcomes import LedgerUnavailable
from caracal.services.tools import McpServer, Tool
from tests.conftest import _require_postgres
from tests.runtime.upstream import Upstream, running_upstream
from tests.support.cli import Result, run_cli
from tests.support.postgres import scratch_database
from tests.support.runtime import Server, free_port, serve

pytestmark = pytest.mark.timeout(120)

UPSTREAM_SECRET = "upstream-credential-7f3a"
READ = "provider:docs:action:read"
WRITE = "provider:docs:action:write"
FILES = "provider:docs:resource:files"
DOWN_READ = "provider:down:action:read"
DOWN_FILES = "provider:down:resource:files"
DENIED = -32010
CHALLENGE = 'Bearer realm="caracal"'
INVALID = 'Bearer realm="caracal", error="invalid_token"'
SCOPE = 'Bearer realm="caracal", error="insufficient_scope"'


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@dataclass
class Gate:
    server: Server
    upstream: Upstream
    home: Path
    tokens: dict[str, str] = field(default_factory=dict)
    mandates: dict[str, str] = field(default_factory=dict)

    def url(self, server: str = "docs") -> str:
        return f"{self.server.url}/mcp/{server}"

    def issue(
        self, name: str, *actions: str, ttl: str = "30m", resource: str = FILES, intent: Any = None
    ) -> str:
        args = ["mandate", "issue", "--issuer", "alice", "--subject", "agent", "--ttl", ttl]
        if intent is not None:
            args += ["--intent", json.dumps(intent)]
        for action in actions:
            args += ["--action", action]
        data = ok(run_cli(*args, "--resource", resource, "--json")).json()
        self.mandates[name], self.tokens[name] = data["id"], data["token"]
        return str(data["token"])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gate]:
    """One workspace, upstream and `caracal serve` per backend, shared by the module's tests."""
    home = tmp_path_factory.mktemp("gate") / "home"
    with pytest.MonkeyPatch.context() as env, contextlib.ExitStack() as stack:
        env.setenv("CARACAL_HOME", str(home))
        env.setenv("CARACAL_KEYRING", "off")
        env.setenv("UPSTREAM_TOKEN", UPSTREAM_SECRET)
        for var in ("CARACAL_WORKSPACE", "CARACAL_STORE_URL", "CARACAL_MASTER_KEY"):
            env.delenv(var, raising=False)
        env.delenv("CARACAL_REDIS_URL", raising=False)
        if request.param == "postgresql":
            _require_postgres()
            env.setenv("CARACAL_STORE_URL", stack.enter_context(scratch_database()))
        with running_upstream() as upstream:
            ok(run_cli("workspace", "create", "gate"))
            ok(run_cli("config", "set", "validation.clock_leeway_seconds", "0"))
            ok(
                run_cli(
                    "provider", "add", "docs", "--service-type", "mcp",
                    "--base-url", upstream.url, "--auth", "bearer",
                    "--credential-env", "UPSTREAM_TOKEN", "--resource", "files=Files",
                    "--action", "files:read", "--action", "files:write",
                )
            )  # fmt: skip
            # An MCP server nobody answers for, and a provider that is not an MCP server.
            ok(run_cli("provider", "add", "down", "--service-type", "mcp",
                       "--base-url", f"http://127.0.0.1:{free_port()}/mcp",
                       "--resource", "files", "--action", "files:read"))  # fmt: skip
            ok(run_cli("provider", "add", "plain", "--base-url", "http://127.0.0.1:9/api"))
            ok(run_cli("tool", "register", "read_down", "--server", "down",
                       "--resource", DOWN_FILES, "--action", DOWN_READ))  # fmt: skip
            for tool, action in (("read_doc", READ), ("write_doc", WRITE)):
                ok(run_cli("tool", "register", tool, "--server", "docs",
                           "--resource", FILES, "--action", action))  # fmt: skip
            ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
            ok(run_cli("principal", "register", "--kind", "worker", "--name", "agent"))
            ok(
                run_cli(
                    "policy", "create", "--principal", "agent", "--max-validity", "1h",
                    "--resource", "provider:docs:resource:*", "--action", "provider:docs:action:*",
                    "--resource", DOWN_FILES, "--action", DOWN_READ,
                )
            )  # fmt: skip
            with serve() as server:
                world = Gate(server, upstream, home)
                world.issue("reader", READ)
                world.issue("writer", READ, WRITE)
                yield world


async def _session_call(url: str, token: str | None, work: Any) -> Any:
    """One agent session: initialize, then `work`. An MCP error is raised after the SDK's
    task groups have closed, so it arrives bare rather than inside an exception group."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    outcome: Any = None
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        try:
            await session.initialize()
            outcome = await work(session)
        except MCPError as exc:
            outcome = exc
    if isinstance(outcome, MCPError):
        raise outcome
    return outcome


async def call(gate: Gate, token: str | None, tool: str, arguments: dict[str, Any]) -> Any:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool(tool, arguments)

    return await _session_call(gate.url(), token, work)


async def listed(gate: Gate, token: str) -> list[str]:
    async def work(session: ClientSession) -> Any:
        return await session.list_tools()

    return [t.name for t in (await _session_call(gate.url(), token, work)).tools]


async def denied(gate: Gate, token: str | None, tool: str, arguments: dict[str, Any]) -> Any:
    calls, requests = list(gate.upstream.calls), len(gate.upstream.authorizations)
    with pytest.raises(MCPError) as caught:
        await call(gate, token, tool, arguments)
    assert gate.upstream.calls == calls, "a refused call reached the upstream's tools"
    assert len(gate.upstream.authorizations) == requests, "a refused call contacted the upstream"
    return caught.value.error


def rpc(
    gate: Gate,
    message: Any,
    *,
    bearer: str | None = "reader",
    server: str = "docs",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One raw POST to the gate (no SDK), for the protocol's edges."""
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if bearer:  # a mandate's name in `gate.tokens`, or a token itself
        sent["Authorization"] = f"Bearer {gate.tokens.get(bearer, bearer)}"
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return httpx.post(gate.url(server), content=body, headers={**sent, **(headers or {})})


def request(method: str, params: dict[str, Any] | None = None, id_: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}


def ledger(*args: str) -> list[dict[str, Any]]:
    return list(ok(run_cli("ledger", "list", "--limit", "10000", *args, "--json")).json())


# ---- authority --------------------------------------------------------------------------
async def test_an_allowed_call_reaches_the_upstream_with_its_credential_not_the_mandate(
    gate: Gate,
) -> None:
    result = await call(gate, gate.tokens["reader"], "read_doc", {"path": "plan.md"})
    assert not result.is_error
    assert result.content[0].text == "contents of plan.md"
    assert gate.upstream.called("read_doc")[-1] == {"path": "plan.md"}
    assert f"Bearer {UPSTREAM_SECRET}" in gate.upstream.authorizations
    assert not any(gate.tokens["reader"] in (a or "") for a in gate.upstream.authorizations)


async def test_an_action_outside_the_mandate_is_denied_before_the_upstream(gate: Gate) -> None:
    error = await denied(gate, gate.tokens["reader"], "write_doc", {"path": "x", "text": "y"})
    assert error.code == DENIED
    assert error.data["reason_code"] == "ACTION_OUT_OF_SCOPE"
    assert error.data["decision_id"].startswith("dec")
    assert gate.upstream.called("write_doc") == []


async def test_the_writer_may_write(gate: Gate) -> None:
    result = await call(gate, gate.tokens["writer"], "write_doc", {"path": "a", "text": "hello"})
    assert result.content[0].text == "wrote 5 characters to a"


async def test_a_revoked_mandate_is_denied(gate: Gate) -> None:
    token = gate.issue("revoked", READ)
    assert (await call(gate, token, "read_doc", {"path": "before"})).content[0].text
    ok(run_cli("mandate", "revoke", gate.mandates["revoked"], "--yes"))
    error = await denied(gate, token, "read_doc", {"path": "after"})
    assert error.data["reason_code"] == "MANDATE_REVOKED"
    assert gate.upstream.called("read_doc")[-1] == {"path": "before"}


async def test_an_expired_mandate_is_denied(gate: Gate) -> None:
    token = gate.issue("short", READ, ttl="1s")
    time.sleep(1.2)
    error = await denied(gate, token, "read_doc", {"path": "late"})
    assert error.data["reason_code"] == "MANDATE_EXPIRED"


async def test_a_tampered_or_missing_token_is_denied(gate: Gate) -> None:
    header, payload, signature = gate.tokens["reader"].split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    error = await denied(gate, f"{header}.{payload}.{flipped}", "read_doc", {"path": "p"})
    assert error.data["reason_code"] == "SIGNATURE_INVALID"
    with pytest.raises(MCPError) as caught:
        await call(gate, None, "read_doc", {"path": "p"})
    assert caught.value.error.data["reason_code"] == "TOKEN_MISSING"


async def test_unregistered_tools_are_never_listed_nor_forwarded(gate: Gate) -> None:
    assert await listed(gate, gate.tokens["reader"]) == ["read_doc"]
    assert await listed(gate, gate.tokens["writer"]) == ["read_doc", "write_doc"]
    error = await denied(gate, gate.tokens["writer"], "delete_everything", {})
    assert error.code == -32602
    assert gate.upstream.called("delete_everything") == []


async def test_tool_and_provider_changes_reach_the_running_gate_at_once(gate: Gate) -> None:
    """The gate caches each MCP server's registry behind the store's authority version: a
    tool removed, re-registered under another scope, or a server moved through the CLI is
    what the very next call sees."""
    writer, reader = gate.tokens["writer"], gate.tokens["reader"]
    assert (await call(gate, writer, "write_doc", {"path": "a", "text": "x"})).content[0].text
    ok(run_cli("tool", "remove", "write_doc", "--yes"))
    try:
        error = await denied(gate, writer, "write_doc", {"path": "gone", "text": "x"})
        assert error.code == -32602 and "Unknown tool" in error.message
        # Back under the read scope: the reader may now call it.
        ok(run_cli("tool", "register", "write_doc", "--server", "docs",
                   "--resource", FILES, "--action", READ))  # fmt: skip
        result = await call(gate, reader, "write_doc", {"path": "b", "text": "hi"})
        assert result.content[0].text == "wrote 2 characters to b"
    finally:
        ok(run_cli("tool", "remove", "write_doc", "--yes"))
        ok(run_cli("tool", "register", "write_doc", "--server", "docs",
                   "--resource", FILES, "--action", WRITE))  # fmt: skip
    assert (await denied(gate, reader, "write_doc", {"path": "c", "text": "x"})).code == DENIED
    # The server moved to where nobody answers: the next call fails upstream, never silently.
    ok(run_cli("provider", "update", "docs", "--base-url", f"http://127.0.0.1:{free_port()}/mcp"))
    try:
        with pytest.raises(MCPError) as caught:
            await call(gate, reader, "read_doc", {"path": "moved"})
        assert caught.value.error.data["reason_code"] == "UPSTREAM_UNAVAILABLE"
    finally:
        ok(run_cli("provider", "update", "docs", "--base-url", gate.upstream.url))
    assert (await call(gate, reader, "read_doc", {"path": "back"})).content[0].text


async def test_tools_list_of_an_invalid_mandate_is_refused(gate: Gate) -> None:
    """A token that is no mandate is refused a listing (401), as the calls it would list."""
    with pytest.raises(MCPError) as caught:
        await listed(gate, "not-a-mandate")
    assert caught.value.error.data["reason_code"] == "TOKEN_MALFORMED"


async def test_every_decision_is_in_the_ledger_and_no_token_is(gate: Gate) -> None:
    await call(gate, gate.tokens["reader"], "read_doc", {"path": "audit"})
    await denied(gate, gate.tokens["reader"], "write_doc", {"path": "audit", "text": "t"})
    events = ledger("--mandate", gate.mandates["reader"])
    decisions = [e for e in events if e["payload"].get("source") == "mcp"]
    allowed = [e for e in decisions if e["type"] == "validation.allowed"]
    refused = [e for e in decisions if e["type"] == "validation.denied"]
    assert allowed and refused
    assert all(e["mandate_id"] == gate.mandates["reader"] for e in decisions)
    assert allowed[0]["payload"]["action"] == READ
    assert refused[0]["reason_code"] == "ACTION_OUT_OF_SCOPE"
    assert (refused[0]["payload"]["action"], refused[0]["payload"]["resource"]) == (WRITE, FILES)
    assert all(e["payload"]["decision_id"].startswith("dec") for e in decisions)
    dump = json.dumps(ledger())
    for token in gate.tokens.values():
        assert token not in dump
        assert token.split(".")[2] not in dump


async def test_a_mandate_bound_to_one_call_allows_only_that_call(gate: Gate) -> None:
    """The gate presents each call as the intent {"tool": NAME, "arguments": {...}}."""
    intent = {"tool": "read_doc", "arguments": {"path": "only.md"}}
    token = gate.issue("bound", READ, intent=intent)
    assert (await call(gate, token, "read_doc", {"path": "only.md"})).content[0].text
    error = await denied(gate, token, "read_doc", {"path": "other.md"})
    assert error.data["reason_code"] == "INTENT_MISMATCH"


# ---- HTTP statuses ----------------------------------------------------------------------
def _refusal(reply: httpx.Response, request_id: int = 1) -> tuple[int, str | None, str]:
    """A denial's status, challenge and reason code, its JSON-RPC error checked on the way."""
    answer = reply.json()
    assert answer["id"] == request_id and answer["error"]["code"] == DENIED, answer
    assert answer["error"]["data"]["decision_id"], answer
    return (
        reply.status_code,
        reply.headers.get("www-authenticate"),
        answer["error"]["data"]["reason_code"],
    )


def test_denials_carry_the_runtimes_statuses_around_their_json_rpc_error(gate: Gate) -> None:
    """As the MCP authorization specification asks: 401 and a challenge for a token that is
    no usable mandate (get another), 403 `insufficient_scope` for a valid one that does not
    allow the call (get one that does), the JSON-RPC error with its reason in the body."""
    revoked = gate.issue("revoked-status", READ)
    ok(run_cli("mandate", "revoke", gate.mandates["revoked-status"], "--yes"))
    expired = gate.issue("expired-status", READ, ttl="1s")
    header, payload, signature = gate.tokens["reader"].split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    time.sleep(1.2)
    calls = list(gate.upstream.calls)
    read = request("tools/call", {"name": "read_doc", "arguments": {"path": "s"}}, id_=7)
    for token, code in (
        (revoked, "MANDATE_REVOKED"),
        (expired, "MANDATE_EXPIRED"),
        (forged, "SIGNATURE_INVALID"),
    ):
        assert _refusal(rpc(gate, read, bearer=token), 7) == (401, INVALID, code)
        listing = rpc(gate, request("tools/list"), bearer=token)
        assert _refusal(listing) == (401, INVALID, code)
    assert _refusal(rpc(gate, read, bearer=None), 7) == (401, CHALLENGE, "TOKEN_MISSING")
    write = request("tools/call", {"name": "write_doc", "arguments": {"path": "s", "text": "t"}})
    assert _refusal(rpc(gate, write, bearer="reader")) == (403, SCOPE, "ACTION_OUT_OF_SCOPE")
    assert gate.upstream.calls == calls, "a refused call reached the upstream"
    allowed = rpc(gate, read, bearer="reader")
    assert allowed.status_code == 200 and "www-authenticate" not in allowed.headers
    assert allowed.json()["result"]["content"][0]["text"] == "contents of s"


async def test_a_valid_mandate_allowed_no_tool_gets_an_empty_listing_not_a_refusal(
    gate: Gate,
) -> None:
    """A listing is not a denial: a live mandate that allows none of the tools sees none."""
    token = gate.issue("other-server", DOWN_READ, resource=DOWN_FILES)
    reply = rpc(gate, request("tools/list"), bearer=token)
    assert reply.status_code == 200 and reply.json()["result"] == {"tools": []}
    assert await listed(gate, token) == []


async def test_the_sdk_client_sees_401_for_a_revoked_mandate(gate: Gate) -> None:
    """What the official client is answered at the HTTP level, besides the error it raises."""
    token = gate.issue("revoked-sdk", READ)
    ok(run_cli("mandate", "revoke", gate.mandates["revoked-sdk"], "--yes"))
    seen: list[tuple[int, str | None]] = []

    async def record(response: httpx2.Response) -> None:
        seen.append((response.status_code, response.headers.get("www-authenticate")))

    hooks = {"response": [record]}
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, event_hooks=hooks) as http,
        streamable_http_client(gate.url(), http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        with pytest.raises(MCPError) as caught:
            await session.call_tool("read_doc", {"path": "p"})
    assert caught.value.error.data["reason_code"] == "MANDATE_REVOKED"
    assert (401, INVALID) in seen


# ---- upstream sessions ------------------------------------------------------------------
async def test_the_gate_starts_a_new_upstream_session_when_the_upstream_forgets_it(
    gate: Gate,
) -> None:
    await call(gate, gate.tokens["reader"], "read_doc", {"path": "one"})
    # A new upstream process knows no session (the gate's now answers 404), and this one
    # answers in plain JSON where the first answered with SSE streams.
    gate.upstream.restart(True)
    result = await call(gate, gate.tokens["reader"], "read_doc", {"path": "two"})
    assert result.content[0].text == "contents of two"
    assert gate.upstream.called("read_doc")[-2:] == [{"path": "one"}, {"path": "two"}]


async def test_every_tools_list_is_recorded_with_the_count_shown(gate: Gate) -> None:
    """A listing says what a token may do (is it live, what does it grant): it was an oracle
    nobody saw. Now each is one ledger event, with how many tools it showed, and counted in
    /metrics."""

    def metric(text: str, name: str) -> int:
        line = next((ln for ln in text.splitlines() if ln.startswith(name + " ")), None)
        return int(line.split()[-1]) if line else 0

    before = ledger("--type", "mcp.tools_listed")
    metrics = gate.server.request("GET", "/metrics").body.decode()
    shown_before = metric(metrics, 'caracal_mcp_tool_listings_total{result="shown"}')
    decisions = len(ledger("--type", "validation."))
    reply = rpc(gate, request("tools/list"), bearer="reader")
    assert [t["name"] for t in reply.json()["result"]["tools"]] == ["read_doc"]
    events = ledger("--type", "mcp.tools_listed")
    assert len(events) == len(before) + 1
    event = events[-1]
    assert (event["payload"]["shown"], event["payload"]["registered"]) == (1, 2)
    assert event["mandate_id"] == gate.mandates["reader"] and event["reason_code"] == "ALLOWED"
    assert gate.tokens["reader"] not in json.dumps(event)
    assert len(ledger("--type", "validation.")) == decisions  # the listing, not one per tool
    metrics = gate.server.request("GET", "/metrics").body.decode()
    assert metric(metrics, 'caracal_mcp_tool_listings_total{result="shown"}') == shown_before + 1
    assert metric(metrics, "caracal_mcp_tools_shown_total") >= 1


async def test_an_allowed_call_to_an_unreachable_server_fails_cleanly(gate: Gate) -> None:
    token = gate.issue("down", DOWN_READ, resource=DOWN_FILES)
    reply = rpc(
        gate,
        request("tools/call", {"name": "read_down", "arguments": {}}),
        bearer=token,
        server="down",
    )
    error = reply.json()["error"]
    assert error["code"] == -32011
    assert error["data"]["reason_code"] == "UPSTREAM_UNAVAILABLE"
    assert error["data"]["decision_id"].startswith("dec")


# ---- the protocol's edges ---------------------------------------------------------------
def test_initialize_negotiates_and_names_the_gate(gate: Gate) -> None:
    reply = rpc(gate, request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                             "clientInfo": {"name": "t", "version": "1"}}))  # fmt: skip
    assert reply.status_code == 200 and reply.headers["mcp-session-id"]
    result = reply.json()["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["serverInfo"]["name"] == "caracal-gate/docs"
    assert "tools" in result["capabilities"]
    future = rpc(gate, request("initialize", {"protocolVersion": "2099-01-01"}))
    assert future.json()["result"]["protocolVersion"] == "2025-11-25"
    notified = rpc(gate, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert notified.status_code == 202 and notified.content == b""
    assert rpc(gate, request("ping")).json()["result"] == {}


@pytest.mark.parametrize(
    ("message", "options", "status", "code"),
    [
        (request("tools/list"), {"server": "nosuch"}, 404, -32012),
        (request("tools/list"), {"server": "plain"}, 404, -32012),
        (request("tools/list"), {"bearer": None}, 401, DENIED),
        (request("tools/list"), {"bearer": "not.a.mandate"}, 401, DENIED),
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', {}, 400, -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}', {}, 400, -32700),
        ([request("ping"), request("ping", id_=2)], {}, 400, -32600),
        ({"id": 1, "method": "ping"}, {}, 400, -32600),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, {}, 400, -32600),
        (request("resources/list"), {}, 200, -32601),
        (request("tools/call", {"name": "read_doc", "arguments": [1]}), {}, 200, -32602),
        (request("tools/list", {"cursor": "x"}), {}, 200, -32602),
        (request("ping"), {"headers": {"Content-Type": "text/plain"}}, 415, -32600),
        (request("ping"), {"headers": {"MCP-Protocol-Version": "1999-01-01"}}, 400, -32600),
        (request("ping"), {"headers": {"Origin": "http://evil.example"}}, 403, -32600),
    ],
)
def test_malformed_or_misdirected_requests_get_json_rpc_errors(
    gate: Gate, message: Any, options: dict[str, Any], status: int, code: int
) -> None:
    reply = rpc(gate, message, **options)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code


def test_oversized_bodies_and_other_http_methods_are_refused(gate: Gate) -> None:
    huge = request("tools/call", {"name": "read_doc", "arguments": {"path": "x" * 1_100_000}})
    body = json.dumps(huge).encode()
    for _ in range(10):
        assert rpc(gate, huge).status_code == 413
        chunks = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        streamed = httpx.post(
            gate.url(), content=chunks, headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text
    assert httpx.get(gate.url()).status_code == 405
    assert httpx.delete(gate.url()).status_code == 405


@pytest.mark.slow
def test_time_per_gated_call(gate: Gate, record_property: Any) -> None:
    """A decided, recorded and forwarded call, measured from a keep-alive client."""
    body = json.dumps(request("tools/call", {"name": "read_doc", "arguments": {"path": "t"}}))
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Authorization": f"Bearer {gate.tokens['reader']}"}  # fmt: skip
    timings = []
    with httpx.Client(headers=headers) as client:
        for _ in range(60):
            started = time.perf_counter()
            reply = client.post(gate.url(), content=body)
            timings.append(time.perf_counter() - started)
            assert "result" in reply.json()
        denied_timings = []
        for _ in range(60):
            started = time.perf_counter()
            reply = client.post(gate.url(), content=body.replace("read_doc", "write_doc"))
            denied_timings.append(time.perf_counter() - started)
            assert reply.json()["error"]["code"] == DENIED
    allowed_ms = statistics.median(timings[10:]) * 1000
    denied_ms = statistics.median(denied_timings[10:]) * 1000
    record_property("allowed_call_median_ms", round(allowed_ms, 2))
    record_property("denied_call_median_ms", round(denied_ms, 2))
    print(f"gated call: allowed {allowed_ms:.2f} ms, denied {denied_ms:.2f} ms (median)")
    assert allowed_ms < 500 and denied_ms < 500


async def test_the_sdks_default_client_falls_back_to_the_handshake(gate: Gate) -> None:
    """`mcp.Client` probes the 2026 `server/discover` first; the gate speaks the handshake
    era, so the probe is refused and the client initializes instead."""
    headers = {"Authorization": f"Bearer {gate.tokens['reader']}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(gate.url(), http_client=http)) as client,
    ):
        assert [t.name for t in (await client.list_tools()).tools] == ["read_doc"]
        result = await client.call_tool("read_doc", {"path": "auto.md"})
    assert getattr(result.content[0], "text", None) == "contents of auto.md"


# ---- fail closed ------------------------------------------------------------------------
class _Broken:
    """A runtime whose authorizer fails, and an upstream pool that must never be used."""

    def __init__(self) -> None:
        tool = Tool("read_doc", "docs", FILES, READ, None, 0.0)
        self.server = McpServer("docs", "http://127.0.0.1:9/mcp", 1.0, {"read_doc": tool})
        self.caracal = SimpleNamespace(tools=SimpleNamespace(mcp_server=lambda _: self.server))
        self.authorizer = SimpleNamespace(
            decide=self._decide,
            check=self._check,
            mcp_server=lambda _name, _version=None: self.server,
            fresh_version=self._fresh,
            admit=lambda _client: None,
            record_listing=self._record,
        )
        self.upstream_used = False

    async def _fresh(self) -> None:
        return None

    async def _decide(self, *args: Any, **kwargs: Any) -> Any:
        raise LedgerUnavailable("the ledger is down")

    async def _check(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store is down")

    async def _record(self, *args: Any, **kwargs: Any) -> Any:
        return None

    async def request(self, *args: Any) -> Any:
        self.upstream_used = True

    async def list_tools(self, *args: Any) -> Any:
        self.upstream_used = True


def test_an_undecidable_call_is_refused_and_never_forwarded() -> None:
    broken = _Broken()
    gate = McpGate(broken, upstreams=broken)  # type: ignore[arg-type]
    with TestClient(Starlette(routes=[Mount("/mcp", routes=gate.routes())])) as client:
        headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        call = request("tools/call", {"name": "read_doc", "arguments": {}})
        answer = client.post("/mcp/docs", json=call, headers=headers)
        error = answer.json()["error"]
        assert (error["code"], error["data"]["reason_code"]) == (DENIED, "LEDGER_UNAVAILABLE")
        assert answer.status_code == 503  # as /v1/authorize: not a denial, try again later
        listed = client.post("/mcp/docs", json=request("tools/list"), headers=headers).json()
        assert listed["result"] == {"tools": []}
    assert not broken.upstream_used


class _Failing(_Broken):
    async def _decide(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the validator broke")


def test_a_call_that_fails_to_be_decided_is_a_503_and_never_forwarded() -> None:
    broken = _Failing()
    gate = McpGate(broken, upstreams=broken)  # type: ignore[arg-type]
    with TestClient(Starlette(routes=[Mount("/mcp", routes=gate.routes())])) as client:
        headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        call = request("tools/call", {"name": "read_doc", "arguments": {}})
        answer = client.post("/mcp/docs", json=call, headers=headers)
        assert answer.status_code == 503  # as the provider gateway answers it
        assert answer.json()["error"]["data"]["reason_code"] == "INTERNAL_ERROR"
    assert not broken.upstream_used
