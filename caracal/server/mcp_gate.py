"""The MCP gate: an MCP server (Streamable HTTP, JSON-RPC 2.0 over POST) at `/mcp/{server}`
that lists and calls only the tools registered in Caracal for that server, each call decided
by the caller's mandate (recorded in the ledger) before anything reaches the upstream.

A denial's HTTP status follows the runtime's one rule (`statuses`), as the MCP authorization
specification asks: 401 with a challenge when the token is no usable mandate (a client should
get another one), 403 `insufficient_scope` when a valid mandate does not allow the call. The
JSON-RPC error, with the reason code and decision id, is the body of either.

Sessions are stateless here: the `Mcp-Session-Id` the gate hands out carries no state and is
not required, because the mandate on every request is the only authority. So any replica can
answer any request.

Here: the HTTP side (a request's credential, the server it names, a caller who leaves) and the
upstream sessions; the message is read and the answers built by `mcp_messages`, each method
answered by `mcp_methods`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from caracal.core.errors import NotFoundError
from caracal.core.names import IDENTIFIER
from caracal.server.mcp_messages import (
    DENIED,
    INTERNAL_ERROR,
    UNKNOWN_SERVER,
    Rejected,
    challenge_headers,
    read_message,
    rpc_error,
)
from caracal.server.mcp_methods import McpMethods
from caracal.server.mcp_upstream import UpstreamError, UpstreamPool
from caracal.server.outcomes import RateLimited
from caracal.server.requests import bearer
from caracal.server.statuses import NO_CREDENTIAL
from caracal.services.tools import McpServer

log = logging.getLogger("caracal.server.mcp")


class McpGate:
    """One gate per runtime: the routes, and the upstream sessions they share."""

    def __init__(self, runtime: Any, upstreams: UpstreamPool | None = None) -> None:
        self.runtime = runtime
        self.upstreams = upstreams or UpstreamPool(self._auth_headers, settings=self._limits)
        self.methods = McpMethods(runtime, self.upstreams)

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
            message = await read_message(request)
        except Rejected as exc:
            return rpc_error(None, exc.code, exc.message, exc.data, status=exc.status)
        request_id = message.get("id")
        token = bearer(request.headers.get("authorization"))
        if token is None:
            client = request.client.host if request.client else None
            # Counted with the other denials no key can be tied to (never one event each).
            decision_id = self.runtime.authorizer.denials.count(
                NO_CREDENTIAL, client, {"source": "mcp"}
            )
            return rpc_error(
                request_id,
                DENIED,
                "A mandate is required: send it as `Authorization: Bearer <token>`.",
                {
                    "reason_code": NO_CREDENTIAL,
                    "reason": "no bearer token",
                    "decision_id": decision_id,
                },
                status=401,
                headers=challenge_headers(NO_CREDENTIAL),
            )
        name = request.path_params["server"]
        try:
            if not IDENTIFIER.fullmatch(name):
                raise NotFoundError(f"No MCP server named {name!r} is registered.")
            server = await self._server(name)
        except NotFoundError as exc:
            return rpc_error(request_id, UNKNOWN_SERVER, exc.message, status=404)
        except Exception:
            log.exception("mcp %s: cannot read the tool registry", name)
            return rpc_error(
                request_id, INTERNAL_ERROR, "The tool registry is unavailable.", status=503
            )
        if "method" not in message:
            return Response(status_code=202)  # a response to a request we never sent
        if "id" not in message:
            return Response(status_code=202)  # notifications (initialized, cancelled, ...)
        client = request.client.host if request.client else None
        try:
            return await _unless_disconnected(
                request, self.methods.dispatch(server, token, message, client)
            )
        except RateLimited as exc:
            data = {"reason_code": "RATE_LIMITED", "reason": str(exc), "decision_id": None}
            retry = str(max(1, round(exc.retry_after)))
            return rpc_error(
                request_id,
                DENIED,
                "Too many requests with unusable tokens.",
                data,
                status=429,
                headers={"Retry-After": retry},
            )


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
