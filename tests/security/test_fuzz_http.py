"""Fuzzing the runtime service in process: `POST /v1/authorize` bodies and MCP JSON-RPC
messages at `/mcp/<server>`, through the real ASGI app (`create_app`) with its lifespan run,
driven over raw ASGI so that headers, chunking and disconnects can be fuzzed too.

Cases: 10,000 authorize requests and 10,000 MCP requests (short and long mode alike). Every answer must come within 2 s and be a 2xx/4xx with the documented JSON
shape, never a 5xx or an exception out of the app:

- authorize: 200 only for an issued, live token asked for a scope it grants (and by its
  subject, with its intent, when given); 400/413 (malformed, too large) never reach the
  ledger, every 200/403 about a real mandate adds exactly one ledger event, and a 403 about
  a token tied to no known key adds none at once (it is counted, and recorded in aggregate;
  the per-client limit on those is off here so that every case is decided);
- MCP: nothing is forwarded upstream except a `tools/call` of a registered tool under a live
  mandate granting that tool's scopes (and, for a mandate bound to an intent, with exactly
  that intent's arguments). The upstream is a recording fake, so the gate itself runs as is.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import example, given
from sqlalchemy import text

from caracal.server.mcp_upstream import HANDSHAKE_VERSIONS, UpstreamPool
from caracal.server.statuses import denial_status
from caracal.services.denial_aggregator import ANONYMOUS
from caracal.services.facade import Caracal
from caracal.store import ledger_rows
from tests.security.fuzzing import (
    BOUND_INTENT,
    COMMENT,
    DOCS_READ,
    DOCS_WRITE,
    FILES,
    ISSUES,
    READ,
    REPOS,
    TIMEOUT,
    WRITE,
    FalseAllow,
    Grant,
    Shown,
    Tally,
    World,
    build_world,
    fast_cli,
    fuzz_settings,
    isolated_home,
    mutate_bytes,
    mutate_text,
    random_json,
    random_text,
    rngs,
    tallied,
)
from tests.support.cli import run_cli

pytestmark = TIMEOUT

REQUEST_SECONDS = 2.0
SCOPES = [READ, WRITE, COMMENT, REPOS, ISSUES, DOCS_READ, DOCS_WRITE, FILES]
TOOLS = {"read_doc": (DOCS_READ, FILES), "write_doc": (DOCS_WRITE, FILES)}


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class AsgiDriver:
    """Runs an ASGI app on its own event loop: the lifespan once, then one request at a time
    with a hard time limit."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._lifespan: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] | None = None

    def start(self) -> None:
        self.loop.run_until_complete(self._lifespan_event("startup"))

    def stop(self) -> None:
        self.loop.run_until_complete(self._lifespan_event("shutdown"))
        self.loop.close()

    async def _lifespan_event(self, which: str) -> None:
        if self._lifespan is None:
            self._inbox, self._outbox = asyncio.Queue(), asyncio.Queue()
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            self._lifespan = asyncio.ensure_future(
                self.app(scope, self._inbox.get, self._outbox.put)
            )
        assert self._inbox is not None and self._outbox is not None
        await self._inbox.put({"type": f"lifespan.{which}"})
        answer = await asyncio.wait_for(self._outbox.get(), 30)
        assert answer["type"] == f"lifespan.{which}.complete", answer

    def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        chunks: list[bytes],
        disconnect_after: int | None = None,
    ) -> Reply:
        return self.loop.run_until_complete(
            asyncio.wait_for(
                self._request(method, path, headers, chunks, disconnect_after), REQUEST_SECONDS
            )
        )

    async def _request(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        chunks: list[bytes],
        disconnect_after: int | None,
    ) -> Reply:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("utf-8", "surrogateescape"),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }
        messages: list[dict[str, Any]] = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks or [b""])
        ]
        if disconnect_after is not None:
            messages = [*messages[:disconnect_after], {"type": "http.disconnect"}]
        done = asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await done.wait()  # the body is over: the client waits for the answer
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Reply(start["status"], dict(start.get("headers", [])), body)


@dataclass
class Upstream:
    """The MCP upstream, faked: records what the gate forwards."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def request(self, server: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((server.name, method, params))
        json.dumps(params, separators=(",", ":"), allow_nan=False)  # as the real pool sends it
        return {"result": {"content": [{"type": "text", "text": "ok"}]}}

    async def list_tools(self, server: Any) -> list[dict[str, Any]]:
        self.calls.append((server.name, "tools/list", {}))
        return [{"name": n, "inputSchema": {"type": "object"}} for n in (*TOOLS, "rm_rf")]


@dataclass(repr=False)
class Service(Shown):
    world: World
    driver: AsgiDriver
    app: Caracal
    upstream: Upstream
    authorize: Tally
    mcp: Tally

    def ledger_head(self) -> int:
        """Events in the ledger, but those that record a kept head (a decision that crosses
        `checkpoint_every` is followed by one) and the aggregated denials (written by the
        runtime every interval, whichever request is under way)."""
        with self.app.store.read() as conn:
            kept = conn.execute(text("SELECT count(*) FROM ledger_checkpoints")).scalar_one()
            aggregated = conn.execute(
                text("SELECT count(*) FROM ledger_events WHERE type = :t"),
                {"t": "validation.denials_aggregated"},
            ).scalar_one()
            return int(ledger_rows.head(conn)[0]) - int(kept) - int(aggregated)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("fuzz-http") / "home"
    with (
        isolated_home(home),
        pytest.MonkeyPatch.context() as mp,
        tallied("authorize") as authorize,
        tallied("mcp") as mcp,
    ):
        with fast_cli():
            world = build_world()
            limit_off = ("config", "set", "runtime.anonymous_denials.per_client_per_second", "0")
            assert run_cli("-w", world.name, *limit_off).code == 0
        upstream = Upstream()
        mp.setattr(UpstreamPool, "request", lambda self, *a: upstream.request(*a))
        mp.setattr(UpstreamPool, "list_tools", lambda self, *a: upstream.list_tools(*a))
        from caracal.server.app import create_app

        driver = AsgiDriver(create_app(world.name))
        driver.start()
        app = Caracal.open(world.name)
        try:
            yield Service(world, driver, app, upstream, authorize, mcp)
        finally:
            app.close()
            driver.stop()


def _latin1(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _json_bytes(rng: random.Random, value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=rng.random() < 0.7, separators=(",", ":"))
    except ValueError:
        text = "{}"
    return text.encode("utf-8", "surrogatepass")


# Bodies no generator reaches by chance: nesting deeper than the parser's recursion limit,
# numbers past the digit limit, NaN, bytes that are not UTF-8, duplicate keys.
PATHOLOGICAL = [
    b"",
    b"null",
    b"[" * 60_000,
    b'{"token":' * 10_000,
    b'{"intent":' + b"[" * 60_000,
    b"1" * 5_000,
    b'{"token":"t","action":"a","resource":"r","intent":NaN}',
    b'{"token":"t","action":"a","resource":"r","intent":1e999}',
    b"\xff\xfe{}",
    b"\xef\xbb\xbf{}",
    b'{"token":"\\ud800","action":"\\udcff","resource":"r"}',
    b'{"token":"t","token":"u","action":"a","resource":"r"}',
]


# ---- /v1/authorize --------------------------------------------------------------------------
def _string_for(rng: random.Random, pool: list[str], limit: int) -> Any:
    """Mostly the first of `pool` (the value that works), else others, near misses, junk."""
    roll = rng.random()
    if roll < 0.5:
        return pool[0]
    if roll < 0.6:
        return rng.choice(pool)
    if roll < 0.75:
        return mutate_text(rng, rng.choice(pool))
    if roll < 0.85:
        return random_text(rng, 30)
    if roll < 0.9:
        return "x" * (limit + rng.choice([0, 1, 100]))
    return random_json(rng, 1)


def authorize_request(rng: random.Random, world: World) -> tuple[dict[str, Any] | None, bytes]:
    """A body as (the fields it carries, when it is a JSON object, and its bytes)."""
    roll = rng.random()
    if roll < 0.05:
        body = rng.choice(PATHOLOGICAL)
        return None, body
    grant = rng.choice(list(world.grants.values()))
    fields: dict[str, Any] = {}
    if rng.random() < 0.95:
        fields["token"] = _string_for(rng, [grant.token, *world.tokens, ""], 16_384)
    if rng.random() < 0.95:
        fields["action"] = _string_for(rng, [grant.actions[0], *SCOPES], 512)
    if rng.random() < 0.95:
        fields["resource"] = _string_for(rng, [grant.resources[0], *SCOPES], 512)
    if rng.random() < 0.3:
        fields["caller"] = _string_for(
            rng, [grant.subject, grant.subject_id, *world.principals, "nobody"], 256
        )
    if rng.random() < 0.3:
        fields["intent"] = rng.choice([BOUND_INTENT, random_json(rng), {"tool": "read_doc"}])
    if rng.random() < 0.05:
        fields[random_text(rng, 8)] = random_json(rng, 1)
    body = _json_bytes(rng, fields)
    if rng.random() < 0.15:
        body = mutate_bytes(rng, body)
        return None, body
    return fields, body


def _oracle_allows(world: World, body: bytes) -> bool:
    """Would an honest reading of `body` be allowed? (Python's JSON reading, as the server.)"""
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(fields, dict):
        return False
    grant = world.grant_of(fields.get("token"))  # type: ignore[arg-type]
    if grant is None or not isinstance(fields.get("action"), str):
        return False
    if not grant.allows(fields["action"], fields.get("resource")):  # type: ignore[arg-type]
        return False
    if fields.get("caller") not in (None, grant.subject, grant.subject_id):
        return False
    return grant.intent is None or fields.get("intent") == grant.intent


def _headers(
    rng: random.Random, body: bytes, kind: str = "application/json"
) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"127.0.0.1:8080")]
    if rng.random() < 0.9:
        headers.append(
            (b"content-type", _latin1(kind if rng.random() < 0.9 else random_text(rng, 20)))
        )
    roll = rng.random()
    if roll < 0.6:
        headers.append((b"content-length", str(len(body)).encode()))
    elif roll < 0.8:
        wrong = rng.choice(
            ["-1", "abc", "", " 5", "1e3", "０", "99999999999999999999", str(len(body) + 7), "0"]
        )
        headers.append((b"content-length", _latin1(wrong)))
    if rng.random() < 0.05:
        headers.append((_latin1(random_text(rng, 10).lower()), _latin1(random_text(rng, 30))))
    return headers


def _chunks(rng: random.Random, body: bytes) -> list[bytes]:
    if len(body) < 2 or rng.random() < 0.6:
        return [body]
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 3))))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def check_authorize(service: Service, rng: random.Random) -> None:
    world = service.world
    _, body = authorize_request(rng, world)
    method, path = "POST", "/v1/authorize"
    if rng.random() < 0.03:
        method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "post"])
    chunks = _chunks(rng, body)
    disconnect = rng.randrange(len(chunks)) if rng.random() < 0.05 else None
    headers = _headers(rng, body)
    with service.authorize.case():
        before = service.ledger_head()
        reply = service.driver.request(method, path, headers, chunks, disconnect)
        after = service.ledger_head()
        service.authorize.saw(str(reply.status))
        assert reply.status < 500, (reply, body[:300])
        if method != "POST":
            assert reply.status == 405, reply
            return
        answer = reply.json()
        if reply.status in (400, 413):
            assert set(answer) == {"error", "field", "message"}, answer
            assert after == before, "a rejected request reached the ledger"
            return
        assert reply.status in (200, 401, 403), reply
        anonymous = answer.get("reason_code") in ANONYMOUS
        assert after == before + (0 if anonymous else 1), "a decision was not recorded once"
        service.authorize.saw(answer.get("reason_code", "ALLOWED"))
        if reply.status == 200:
            assert answer["allowed"] is True and answer["mandate_id"], answer
            if disconnect is not None or not _oracle_allows(world, body):
                raise FalseAllow(f"allowed: {body[:300]!r} -> {answer}")
        else:
            assert answer["allowed"] is False and answer["reason_code"] != "ALLOWED", answer
            assert reply.status == denial_status(answer["reason_code"]), answer


@example(rng=random.Random(0))
@given(rng=rngs)
@fuzz_settings(short=10_000)
def test_authorize_answers_4xx_or_a_sound_decision(service: Service, rng: random.Random) -> None:
    check_authorize(service, rng)


@pytest.mark.parametrize("body", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_authorize_bodies(service: Service, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    with service.authorize.case():
        reply = service.driver.request("POST", "/v1/authorize", headers, [body])
    assert reply.status in (400, 401, 403, 413), reply


# ---- the MCP gate ------------------------------------------------------------------------
def _mcp_message(rng: random.Random, world: World) -> Any:
    message: dict[str, Any] = {"jsonrpc": "2.0" if rng.random() < 0.9 else random_json(rng, 0)}
    roll = rng.random()
    if roll < 0.8:
        message["id"] = rng.choice([1, 2**40, "a", "", -1])
    elif roll < 0.9:
        message["id"] = random_json(rng, 1)
    methods = ["tools/call"] * 5 + ["tools/list"] * 2 + ["initialize", "ping"]
    methods += ["notifications/initialized", "resources/list", random_text(rng, 12)]
    if rng.random() < 0.95:
        message["method"] = rng.choice(methods) if rng.random() < 0.95 else random_json(rng, 0)
    if message.get("method") == "tools/call" and rng.random() < 0.9:
        params: dict[str, Any] = {}
        if rng.random() < 0.95:
            params["name"] = rng.choice([*TOOLS, *TOOLS, "rm_rf", random_text(rng, 10), 5])
        roll = rng.random()
        if roll < 0.4:
            params["arguments"] = dict(BOUND_INTENT["arguments"])
        elif roll < 0.8:
            params["arguments"] = random_json(rng, 2) if rng.random() < 0.3 else {"path": "b"}
        if rng.random() < 0.1:
            params["_meta"] = random_json(rng, 1)
        if rng.random() < 0.05:
            params[random_text(rng, 6)] = random_json(rng, 1)
        message["params"] = params
    elif rng.random() < 0.3:
        message["params"] = (
            {"cursor": random_json(rng, 0)}
            if rng.random() < 0.5
            else {"protocolVersion": rng.choice([*HANDSHAKE_VERSIONS, random_text(rng, 8)])}
        )
        if rng.random() < 0.1:
            message["params"] = random_json(rng, 1)
    if rng.random() < 0.05:
        message[rng.choice(["result", "error"])] = random_json(rng, 1)
    return message


ORIGINS = [
    "http://127.0.0.1:8080",
    "http://evil.example",
    "null",
    "http://[",
    "http://[::1",
    "http://a:b@127.0.0.1:8080",
    "http://127.0.0.1:99999",
    "//",
    "",
]


def _mcp_headers(rng: random.Random, body: bytes, token: str | None) -> list[tuple[bytes, bytes]]:
    headers = _headers(rng, body)
    if token is not None:
        scheme = "Bearer" if rng.random() < 0.8 else rng.choice(["bearer", "BEARER", "Basic", ""])
        space = rng.choice([" ", " ", "  ", "\t"])
        headers.append((b"authorization", _latin1(f"{scheme}{space}{token}")))
    if rng.random() < 0.1:
        origin = rng.choice(ORIGINS) if rng.random() < 0.8 else random_text(rng, 20)
        headers.append((b"origin", _latin1(origin)))
    if rng.random() < 0.2:
        version = rng.choice([*HANDSHAKE_VERSIONS, "1999-01-01", random_text(rng, 10)])
        headers.append((b"mcp-protocol-version", _latin1(version)))
    return headers


def _forward_is_sound(world: World, token: str, forwarded: dict[str, Any]) -> bool:
    grant = world.grant_of(token)
    name = forwarded.get("name")
    if grant is None or name not in TOOLS:
        return False
    if not grant.allows(*TOOLS[name]):
        return False
    intent = {"tool": name, "arguments": forwarded.get("arguments") or {}}
    return grant.intent is None or intent == grant.intent


@dataclass
class McpCase:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    bearer: str | None  # the token as the gate reads it: the header stripped, then the token


def mcp_case(rng: random.Random, world: World) -> McpCase:
    grant: Grant = rng.choice(list(world.grants.values()))
    token: str | None = grant.token
    roll = rng.random()
    if roll < 0.2:
        token = mutate_text(rng, grant.token)
    elif roll < 0.25:
        token = random_text(rng, 30)
    elif roll < 0.3:
        token = None
    message = _mcp_message(rng, world)
    if rng.random() < 0.3:  # a well-formed call, near what the grant allows
        name = rng.choice(["read_doc", "read_doc", "write_doc"])
        arguments = dict(BOUND_INTENT["arguments"]) if rng.random() < 0.7 else {"path": "b"}
        params = {"name": name, "arguments": arguments}
        message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    body = _json_bytes(rng, message)
    roll = rng.random()
    if roll < 0.1:
        body = mutate_bytes(rng, body)
    elif roll < 0.13:
        body = rng.choice([*PATHOLOGICAL, b"[" + body + b"]", b"[]"])
    path = "/mcp/docs"
    roll = rng.random()
    if roll < 0.1:
        path = rng.choice(["/mcp/github", "/mcp/nope", "/mcp/", "/mcp", "/mcp/docs/x", "/mcp/DOCS"])
    elif roll < 0.15:
        # As a server decodes it: percent-escapes undone, undecodable bytes replaced.
        path = "/mcp/" + random_text(rng, 12).encode("utf-8", "replace").decode("utf-8")
    method = "POST" if rng.random() < 0.97 else rng.choice(["GET", "DELETE", "PUT", "OPTIONS"])
    headers = _mcp_headers(rng, body, token)
    bearer = None
    for header, value in headers:
        if header == b"authorization":
            scheme, _, rest = value.decode("latin-1").strip().partition(" ")
            bearer = rest.strip() if scheme.lower() == "bearer" else None
    return McpCase(method, path, headers, body, bearer)


def _check_mcp_reply(service: Service, case: McpCase, reply: Reply) -> None:
    service.mcp.saw(str(reply.status))
    assert reply.status < 500, (reply, case.path, case.body[:300])
    # 307: Starlette's redirect of `/mcp` to `/mcp/`; other unrouted paths get its 404.
    assert reply.status in (200, 202, 307, 400, 401, 403, 404, 405, 413, 415), reply
    routed = case.path in ("/mcp/docs", "/mcp/github", "/mcp/nope", "/mcp/DOCS")
    if reply.status in (202, 307, 405) or not routed:
        return
    assert reply.body.startswith(b"{"), (reply, case.path)
    answer = reply.json()
    assert answer.get("jsonrpc") == "2.0" and ("result" in answer or "error" in answer), answer
    if "error" in answer:
        service.mcp.saw(f"jsonrpc {answer['error'].get('code')}")


def _check_forwarded(world: World, case: McpCase, forwarded: list[Any]) -> None:
    """Only `tools/call` of an allowed tool, with the bound intent, reaches the upstream."""
    for _, what, params in forwarded:
        if what == "tools/list":
            continue  # listing shows only tools the mandate allows: see _check_listing
        if case.bearer is None or what != "tools/call" or case.path != "/mcp/docs":
            raise FalseAllow(f"forwarded {what} {params} for {case.path} with {case.bearer!r}")
        if not _forward_is_sound(world, case.bearer, params):
            raise FalseAllow(f"forwarded {params} under {case.bearer[:40]!r}")


def _check_listing(world: World, case: McpCase, reply: Reply) -> None:
    """A `tools/list` answer names only tools the bearer's mandate allows."""
    if reply.status != 200 or not reply.body.startswith(b"{"):
        return
    result = reply.json().get("result")
    if not isinstance(result, dict) or "tools" not in result:
        return
    shown_to = world.grant_of(case.bearer) if case.bearer is not None else None
    for tool in result["tools"]:
        name = tool.get("name")
        if shown_to is None or name not in TOOLS or not shown_to.allows(*TOOLS[name]):
            raise FalseAllow(f"tools/list showed {name} to {case.bearer!r}")


def check_mcp(service: Service, rng: random.Random) -> None:
    case = mcp_case(rng, service.world)
    chunks = _chunks(rng, case.body)
    with service.mcp.case():
        before = len(service.upstream.calls)
        reply = service.driver.request(case.method, case.path, case.headers, chunks)
        forwarded = service.upstream.calls[before:]
        _check_mcp_reply(service, case, reply)
        _check_forwarded(service.world, case, forwarded)
        _check_listing(service.world, case, reply)
    if forwarded:
        service.mcp.saw("forwarded")


# Kept: a number JSON reads as infinity (it reached the intent hash and the upstream encoder),
# and lone surrogates echoed back in the answer (its UTF-8 encoding failed: a 500).
MCP_KEPT = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_doc",'
    b'"arguments":{"path":1e999}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_doc",'
    b'"arguments":{"path":"\\ud800"}}}',
    b'{"jsonrpc":"2.0","id":"\\udcff","method":"\\ud800"}',
]


@pytest.mark.parametrize("origin", [None, b"http://[", b"http://[::1"])  # kept: unclosed IPv6
@pytest.mark.parametrize("body", MCP_KEPT, ids=range(len(MCP_KEPT)))
@pytest.mark.parametrize("label", ["agent", "bound"])
def test_kept_mcp_messages(service: Service, body: bytes, label: str, origin: bytes | None) -> None:
    token = service.world.grants[label].token
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer " + token.encode()),
    ]
    if origin is not None:
        headers.append((b"origin", origin))
    case = McpCase("POST", "/mcp/docs", headers, body, token)
    with service.mcp.case():
        before = len(service.upstream.calls)
        reply = service.driver.request("POST", "/mcp/docs", headers, [body])
        _check_mcp_reply(service, case, reply)
        _check_forwarded(service.world, case, service.upstream.calls[before:])


@example(rng=random.Random(0))
@given(rng=rngs)
@fuzz_settings(short=10_000)
def test_mcp_gate_answers_4xx_and_forwards_only_allowed_calls(
    service: Service, rng: random.Random
) -> None:
    check_mcp(service, rng)
