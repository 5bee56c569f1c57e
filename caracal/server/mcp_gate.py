"""The MCP gate: an MCP server (Streamable HTTP, JSON-RPC 2.0 over POST) at `/mcp/{server}`
that lists and calls only the tools registered in Caracal for that server, each call decided
by the caller's mandate (recorded in the ledger) before anything reaches the upstream.

A denial's HTTP status follows the runtime's one rule (`statuses`), as the MCP authorization
specification asks: 401 with a challenge when the token is no usable mandate (a client should
get another one), 403 `insufficient_scope` when a valid mandate does not allow the call. The
JSON-RPC error, with the reason code and decision id, is the body of either.

Sessions are stateless here: the `Mcp-Session-Id` the gate hands out carries no state and is
not required, because the mandate on every request is the only authority. So any replica can
answer any request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from caracal import __version__
from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.errors import NotFoundError
from caracal.core.names import IDENTIFIER
from caracal.server.mcp_upstream import HANDSHAKE_VERSIONS, UpstreamError, UpstreamPool
from caracal.server.outcomes import LedgerUnavailable, Outcome, RateLimited
from caracal.server.requests import DRAIN_BYTES, drain
from caracal.server.statuses import NO_CREDENTIAL, challenge, denial_status
from caracal.services.tools import McpServer

log = logging.getLogger("caracal.server.mcp")

MAX_BODY_BYTES = 1024 * 1024
# JSON-RPC codes: the standard ones, then the gate's own in the implementation-defined band
# (-32000 and -32001 are taken by the MCP SDK for closed connections and timeouts).
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
INTERNAL_ERROR = -32603
DENIED, UPSTREAM_FAILED, UNKNOWN_SERVER = -32010, -32011, -32012


class JsonRpcResponse(JSONResponse):
    """JSON with non-ASCII escaped: ids, method and tool names are echoed back, and a lone
    surrogate (`"\\ud800"` is valid JSON) cannot be encoded as UTF-8."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


class _Reject(Exception):
    """A request answered with a JSON-RPC error (and an HTTP status) before dispatch."""

    def __init__(self, status: int, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data


def _error(
    request_id: Any,
    code: int,
    message: str,
    data: Any = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> JsonRpcResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return JsonRpcResponse(
        {"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=status, headers=headers
    )


def _result(request_id: Any, result: Any, headers: dict[str, str] | None = None) -> JsonRpcResponse:
    return JsonRpcResponse({"jsonrpc": "2.0", "id": request_id, "result": result}, headers=headers)


def _denial(outcome: Outcome, decision_id: str | None) -> dict[str, Any]:
    return {
        "reason_code": outcome.reason_code,
        "reason": outcome.reason,
        "decision_id": decision_id,
        "mandate_id": outcome.mandate_id,
    }


def _challenge(reason_code: str) -> dict[str, str]:
    """The `WWW-Authenticate` header of a denial, as the other enforcement points send it."""
    return {name.decode(): value.decode() for name, value in challenge(reason_code)}


class McpGate:
    """One gate per runtime: the routes, and the upstream sessions they share."""

    def __init__(self, runtime: Any, upstreams: UpstreamPool | None = None) -> None:
        self.runtime = runtime
        self.upstreams = upstreams or UpstreamPool(self._auth_headers, settings=self._limits)

    def routes(self) -> list[BaseRoute]:
        return [Route("/{server}", self.handle, methods=["POST", "GET", "DELETE"])]

    async def aclose(self) -> None:
        await self.upstreams.aclose()

    async def _auth_headers(self, server: str) -> dict[str, str]:
        try:
            headers: dict[str, str] = await run_in_threadpool(
                self.runtime.caracal.tools.upstream_headers, server
            )
        except Exception as exc:  # e.g. a credential missing after a restore without secrets
            raise UpstreamError(f"the provider's credential is unavailable ({exc})") from None
        return headers

    def _limits(self, server: str) -> Any:
        """The server's limits from the workspace's `runtime.mcp_servers`, else `runtime.mcp`."""
        return self.runtime.caracal.config.runtime.mcp_limits(server)

    async def _server(self, name: str) -> McpServer:
        """The server and its tools, cached behind the store's authority version (which every
        provider or tool change moves); read on the loop, as validation's lookups are."""
        authorizer = self.runtime.authorizer
        found: McpServer = authorizer.mcp_server(name, await authorizer.fresh_version())
        return found

    # ---- HTTP -----------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        if request.method != "POST":
            # No server-initiated stream, and sessions hold nothing to terminate.
            return Response(status_code=405, headers={"Allow": "POST"})
        try:
            message = await self._read_message(request)
        except _Reject as exc:
            return _error(None, exc.code, exc.message, exc.data, status=exc.status)
        request_id = message.get("id")
        token = _bearer(request.headers.get("authorization"))
        if token is None:
            client = request.client.host if request.client else None
            # Counted with the other denials no key can be tied to (never one event each).
            decision_id = self.runtime.authorizer.denials.count(
                NO_CREDENTIAL, client, {"source": "mcp"}
            )
            return _error(
                request_id,
                DENIED,
                "A mandate is required: send it as `Authorization: Bearer <token>`.",
                {
                    "reason_code": NO_CREDENTIAL,
                    "reason": "no bearer token",
                    "decision_id": decision_id,
                },
                status=401,
                headers=_challenge(NO_CREDENTIAL),
            )
        name = request.path_params["server"]
        try:
            if not IDENTIFIER.fullmatch(name):
                raise NotFoundError(f"No MCP server named {name!r} is registered.")
            server = await self._server(name)
        except NotFoundError as exc:
            return _error(request_id, UNKNOWN_SERVER, exc.message, status=404)
        except Exception:
            log.exception("mcp %s: cannot read the tool registry", name)
            return _error(
                request_id, INTERNAL_ERROR, "The tool registry is unavailable.", status=503
            )
        if "method" not in message:
            return Response(status_code=202)  # a response to a request we never sent
        if "id" not in message:
            return Response(status_code=202)  # notifications (initialized, cancelled, ...)
        client = request.client.host if request.client else None
        try:
            return await _unless_disconnected(
                request, self._dispatch(server, token, message, client)
            )
        except RateLimited as exc:
            data = {"reason_code": "RATE_LIMITED", "reason": str(exc), "decision_id": None}
            retry = str(max(1, round(exc.retry_after)))
            return _error(
                request_id,
                DENIED,
                "Too many requests with unusable tokens.",
                data,
                status=429,
                headers={"Retry-After": retry},
            )

    async def _read_message(self, request: Request) -> dict[str, Any]:
        origin = request.headers.get("origin")
        if origin and _netloc(origin) != request.headers.get("host"):
            raise _Reject(403, INVALID_REQUEST, f"Origin {origin!r} is not allowed.")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _Reject(415, INVALID_REQUEST, "Send JSON-RPC as Content-Type: application/json.")
        version = request.headers.get("mcp-protocol-version")
        if version is not None and version not in HANDSHAKE_VERSIONS:
            raise _Reject(400, INVALID_REQUEST, f"Unsupported MCP-Protocol-Version {version!r}.")
        body = await _read_body(request)
        try:
            message = strict_loads(body)
        except StrictJSONError as exc:
            raise _Reject(400, PARSE_ERROR, f"Parse error: {exc}.") from None
        if isinstance(message, list):
            raise _Reject(400, INVALID_REQUEST, "Batches are not supported; send one message.")
        _check_shape(message)
        return message  # type: ignore[no-any-return]

    # ---- methods --------------------------------------------------------------------------
    async def _dispatch(
        self, server: McpServer, token: str, message: dict[str, Any], client: str | None
    ) -> Response:
        request_id, method = message["id"], message["method"]
        params = message.get("params") or {}
        if method == "initialize":
            return self._initialize(server, request_id, params)
        if method == "ping":
            return _result(request_id, {})
        if method == "tools/list":
            return await self._list_tools(server, token, request_id, params, client)
        if method == "tools/call":
            return await self._call_tool(server, token, request_id, params, client)
        return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    def _initialize(self, server: McpServer, request_id: Any, params: dict[str, Any]) -> Response:
        asked = params.get("protocolVersion")
        version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[0]
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": f"caracal-gate/{server.name}", "version": __version__},
        }
        return _result(request_id, result, {"Mcp-Session-Id": secrets.token_urlsafe(24)})

    async def _list_tools(
        self,
        server: McpServer,
        token: str,
        request_id: Any,
        params: dict[str, Any],
        client: str | None = None,
    ) -> Response:
        """The registered tools the mandate allows. A listing says what a token may do, so it
        is recorded like a decision (one event, with how many tools were shown) before it is
        answered. A token that is no usable mandate is refused with 401, as a call with it
        would be; a valid mandate that allows none of the tools gets an empty list (200)."""
        if params.get("cursor") is not None:
            return _error(request_id, INVALID_PARAMS, "Unknown cursor: the gate lists in one page.")
        authorizer = self.runtime.authorizer
        authorizer.admit(client)
        registered = list(server.tools.values())
        checked = await asyncio.gather(
            *(authorizer.check(token, t.action, t.resource) for t in registered),
            return_exceptions=True,
        )
        outcomes = [o for o in checked if not isinstance(o, BaseException)]
        allowed = {
            tool.name
            for tool, outcome in zip(registered, checked, strict=True)
            if getattr(outcome, "allowed", False) is True
        }
        upstream_tools: list[dict[str, Any]] = []
        failure: UpstreamError | None = None
        if allowed:  # nothing to show: the upstream is not asked
            try:
                upstream_tools = await self.upstreams.list_tools(server)
            except UpstreamError as exc:
                failure = exc
        shown = [t for t in upstream_tools if t.get("name") in allowed]
        unusable = None if allowed else await self._unusable(token, outcomes, len(registered))
        try:
            decision_id = await authorizer.record_listing(
                server.name, token, outcomes, len(shown), client
            )
        except LedgerUnavailable as exc:
            data = {"reason_code": "LEDGER_UNAVAILABLE", "reason": exc.reason, "decision_id": None}
            # As `/v1/authorize` answers a decision it could not record: try again later.
            return _error(
                request_id, DENIED, "The listing could not be recorded.", data, status=503
            )
        if unusable is not None:
            return _error(
                request_id,
                DENIED,
                f"Listing refused: {unusable.reason}.",
                _denial(unusable, decision_id),
                status=401,
                headers=_challenge(unusable.reason_code),
            )
        if failure is not None:
            log.warning("mcp %s: tools/list failed upstream: %s", server.name, failure)
            return _error(
                request_id,
                UPSTREAM_FAILED,
                f"The MCP server {server.name!r} is unavailable: {failure}.",
            )
        return _result(request_id, {"tools": shown})

    async def _unusable(
        self, token: str, outcomes: list[Outcome], registered: int
    ) -> Outcome | None:
        """The denial saying the token is no usable mandate (the same for every tool: such
        checks come before any about scopes), or None. With no tool registered, the token is
        checked against no pair at all, so that it is judged like anywhere else."""
        if not registered:
            try:
                outcomes = [await self.runtime.authorizer.check(token, "-", "-")]
            except Exception:  # nothing is known about the token: the listing stays empty
                return None
        first = outcomes[0] if outcomes else None
        return first if first is not None and denial_status(first.reason_code) == 401 else None

    async def _call_tool(
        self,
        server: McpServer,
        token: str,
        request_id: Any,
        params: dict[str, Any],
        client: str | None = None,
    ) -> Response:
        name, arguments = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
            return _error(
                request_id, INVALID_PARAMS, "tools/call needs a string name and object arguments."
            )
        tool = server.tools.get(name)
        if tool is None:
            return _error(request_id, INVALID_PARAMS, f"Unknown tool: {name}")
        try:
            outcome = await self.runtime.authorizer.decide(
                token,
                tool.action,
                tool.resource,
                intent={"tool": name, "arguments": arguments or {}},
                source="mcp",
                client=client,
            )
        except RateLimited:
            raise
        except Exception as exc:
            # Undecided is denied: nothing reaches the upstream.
            log.warning("mcp %s: %s not decided: %s", server.name, name, type(exc).__name__)
            unrecorded = isinstance(exc, LedgerUnavailable)
            data = {
                "reason_code": "LEDGER_UNAVAILABLE" if unrecorded else "INTERNAL_ERROR",
                "reason": str(exc) if unrecorded else "the call could not be decided",
                "decision_id": None,
            }
            return _error(
                request_id,
                DENIED,
                f"Call to {name} refused: it could not be decided.",
                data,
                status=503 if unrecorded else 500,
            )
        if not outcome.allowed:
            code = outcome.reason_code
            return _error(
                request_id,
                DENIED,
                f"Call to {name} denied: {outcome.reason}.",
                _denial(outcome, outcome.decision_id),
                status=denial_status(code),
                headers=_challenge(code),
            )
        forwarded = {k: v for k, v in params.items() if k in ("name", "arguments", "_meta")}
        try:
            reply = await self.upstreams.request(server, "tools/call", forwarded)
        except UpstreamError as exc:
            log.warning("mcp %s: %s failed upstream: %s", server.name, name, exc)
            data = {"reason_code": "UPSTREAM_UNAVAILABLE", "decision_id": outcome.decision_id}
            return _error(
                request_id,
                UPSTREAM_FAILED,
                f"The MCP server {server.name!r} is unavailable: {exc}.",
                data,
            )
        try:
            if "error" in reply:
                return JsonRpcResponse(
                    {"jsonrpc": "2.0", "id": request_id, "error": reply["error"]}
                )
            return _result(request_id, reply["result"])
        except (RecursionError, ValueError) as exc:  # e.g. nested deeper than can be written
            log.warning("mcp %s: %s answer cannot be passed on: %s", server.name, name, exc)
            data = {"reason_code": "UPSTREAM_UNAVAILABLE", "decision_id": outcome.decision_id}
            return _error(
                request_id,
                UPSTREAM_FAILED,
                f"The MCP server {server.name!r} sent an answer that cannot be passed on.",
                data,
            )


def mcp_routes(runtime: Any) -> list[BaseRoute]:
    """The gate's routes, relative to where they are mounted (`Mount("/mcp", routes=...)`)."""
    return McpGate(runtime).routes()


async def _unless_disconnected(request: Request, work: Awaitable[Response]) -> Response:
    """`work`, cancelled if the caller disconnects first (its body is read by now, so the next
    message can only be the disconnect): an upstream call nobody waits for does not keep a
    connection and a slot."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(request.receive())
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return Response(status_code=499)  # nobody reads it
        return task.result()
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await gone


# ---- request reading ----------------------------------------------------------------------
def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _netloc(url: str) -> str | None:
    try:
        return urlsplit(url).netloc
    except ValueError:  # e.g. `http://[` (an unclosed IPv6 literal): no origin we allow
        return None


async def _read_body(request: Request) -> bytes:
    too_large = _Reject(413, INVALID_REQUEST, f"The request is over {MAX_BODY_BYTES} bytes.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        if int(declared) <= DRAIN_BYTES:
            await drain(request.receive)
        raise too_large
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise _Reject(400, INVALID_REQUEST, "The client went away.")
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if more:
                await drain(request.receive, DRAIN_BYTES - size)
            raise too_large
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)


def _check_shape(message: Any) -> None:
    """A JSON-RPC 2.0 request, notification or response, as MCP allows them."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise _Reject(400, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object.")
    if "id" in message:
        request_id = message["id"]
        if isinstance(request_id, bool) or not isinstance(request_id, str | int):
            raise _Reject(400, INVALID_REQUEST, "Invalid Request: id must be a string or integer.")
    if "method" in message:
        if not isinstance(message["method"], str):
            raise _Reject(400, INVALID_REQUEST, "Invalid Request: method must be a string.")
        if message.get("params") is not None and not isinstance(message["params"], dict):
            raise _Reject(400, INVALID_PARAMS, "Invalid params: params must be an object.")
    elif "id" not in message or not ("result" in message or "error" in message):
        raise _Reject(400, INVALID_REQUEST, "Invalid Request: no method, result or error.")
