"""The methods the MCP gate answers: `initialize` and `ping` for any bearer, and the two that
say what a mandate allows: `tools/list` (the registered tools it allows, the listing recorded)
and `tools/call` (decided and recorded before anything reaches the upstream)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from starlette.responses import Response

from caracal import __version__
from caracal.server.mcp_messages import (
    DENIED,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    UPSTREAM_FAILED,
    JsonRpcResponse,
    challenge_headers,
    denial_data,
    rpc_error,
    rpc_result,
)
from caracal.server.mcp_upstream import HANDSHAKE_VERSIONS, UpstreamError, UpstreamPool
from caracal.server.outcomes import LedgerUnavailable, Outcome, RateLimited
from caracal.server.statuses import denial_status
from caracal.services.tools import McpServer

log = logging.getLogger("caracal.server.mcp")


class McpMethods:
    """The gate's answers, over the runtime's authorizer and the gate's upstream sessions."""

    def __init__(self, runtime: Any, upstreams: UpstreamPool) -> None:
        self.runtime = runtime
        self.upstreams = upstreams

    async def dispatch(
        self, server: McpServer, token: str, message: dict[str, Any], client: str | None
    ) -> Response:
        """The answer to one request (not a notification) from a bearer of `token`."""
        request_id, method = message["id"], message["method"]
        params = message.get("params") or {}
        if method == "initialize":
            return self._initialize(server, request_id, params)
        if method == "ping":
            return rpc_result(request_id, {})
        if method == "tools/list":
            return await self._list_tools(server, token, request_id, params, client)
        if method == "tools/call":
            return await self._call_tool(server, token, request_id, params, client)
        return rpc_error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    def _initialize(self, server: McpServer, request_id: Any, params: dict[str, Any]) -> Response:
        asked = params.get("protocolVersion")
        version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[0]
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": f"caracal-gate/{server.name}", "version": __version__},
        }
        return rpc_result(request_id, result, {"Mcp-Session-Id": secrets.token_urlsafe(24)})

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
            return rpc_error(
                request_id, INVALID_PARAMS, "Unknown cursor: the gate lists in one page."
            )
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
            return rpc_error(
                request_id, DENIED, "The listing could not be recorded.", data, status=503
            )
        if unusable is not None:
            return rpc_error(
                request_id,
                DENIED,
                f"Listing refused: {unusable.reason}.",
                denial_data(unusable, decision_id),
                status=401,
                headers=challenge_headers(unusable.reason_code),
            )
        if failure is not None:
            log.warning("mcp %s: tools/list failed upstream: %s", server.name, failure)
            return rpc_error(
                request_id,
                UPSTREAM_FAILED,
                f"The MCP server {server.name!r} is unavailable: {failure}.",
            )
        return rpc_result(request_id, {"tools": shown})

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
            return rpc_error(
                request_id, INVALID_PARAMS, "tools/call needs a string name and object arguments."
            )
        tool = server.tools.get(name)
        if tool is None:
            return rpc_error(request_id, INVALID_PARAMS, f"Unknown tool: {name}")
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
            return rpc_error(
                request_id,
                DENIED,
                f"Call to {name} refused: it could not be decided.",
                data,
                status=503,  # as the provider gateway answers an undecided call
            )
        if not outcome.allowed:
            code = outcome.reason_code
            return rpc_error(
                request_id,
                DENIED,
                f"Call to {name} denied: {outcome.reason}.",
                denial_data(outcome, outcome.decision_id),
                status=denial_status(code),
                headers=challenge_headers(code),
            )
        forwarded = {k: v for k, v in params.items() if k in ("name", "arguments", "_meta")}
        try:
            reply = await self.upstreams.request(server, "tools/call", forwarded)
        except UpstreamError as exc:
            log.warning("mcp %s: %s failed upstream: %s", server.name, name, exc)
            data = {"reason_code": "UPSTREAM_UNAVAILABLE", "decision_id": outcome.decision_id}
            return rpc_error(
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
            return rpc_result(request_id, reply["result"])
        except (RecursionError, ValueError) as exc:  # e.g. nested deeper than can be written
            log.warning("mcp %s: %s answer cannot be passed on: %s", server.name, name, exc)
            data = {"reason_code": "UPSTREAM_UNAVAILABLE", "decision_id": outcome.decision_id}
            return rpc_error(
                request_id,
                UPSTREAM_FAILED,
                f"The MCP server {server.name!r} sent an answer that cannot be passed on.",
                data,
            )
