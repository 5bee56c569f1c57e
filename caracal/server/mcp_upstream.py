"""The gate's client side: one initialized MCP session per upstream server, each server with
its own `aiohttp.ClientSession` and connection pool (Streamable HTTP: answers come as JSON or
as an SSE stream; when the upstream forgets our session it answers 404 and we start a new
one; `mcp_replies` reads each answer). Every call runs under its server's limits
(`mcp_limits`): a share of calls, a deadline no trickling stream can extend, a byte budget,
and a breaker.

aiohttp rather than httpx: with 16 concurrent calls httpx spent about 4 ms of CPU per request
in its connection pool (every request checks every pooled connection), aiohttp 0.26 ms."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from caracal import __version__
from caracal.home.config_model import McpUpstreamSettings
from caracal.server.mcp_limits import ReplyBudget, ServerBusy, ServerGuard, UpstreamError
from caracal.server.mcp_replies import ReplyReader
from caracal.services.tools import McpServer

__all__ = ["HANDSHAKE_VERSIONS", "ServerBusy", "UpstreamError", "UpstreamPool"]

HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
CLIENT_INFO = {"name": "caracal-gate", "version": __version__}
TOOLS_TTL_SECONDS = 10.0
MAX_TOOL_PAGES = 50
# connect: waiting for a pooled connection and opening one; sock_read: between two reads.
# The call's own deadline (call_timeout_seconds) bounds the whole of it.
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=5.0, sock_read=120.0)

HeaderSource = Callable[[str], Awaitable[dict[str, str]]]
SettingsSource = Callable[[str], McpUpstreamSettings]


class _SessionGone(Exception):
    """The upstream answered 404 to our session id: start a new session."""


@dataclass(eq=False)
class _Session:
    url: str
    revision: float
    auth: dict[str, str] = field(repr=False)
    session_id: str | None = None
    protocol_version: str | None = None
    tools: list[dict[str, Any]] | None = None
    tools_expire: float = 0.0


class UpstreamPool:
    """Sessions keyed by server name; a provider change (new URL or credential) or a 404
    from the upstream replaces the session."""

    def __init__(
        self,
        auth_headers: HeaderSource,
        client: aiohttp.ClientSession | None = None,
        settings: SettingsSource | None = None,
    ) -> None:
        self._auth_headers = auth_headers
        self._shared = client  # tests hand one in; otherwise one client per server
        self._settings = settings or (lambda _name: McpUpstreamSettings())
        self._clients: dict[str, aiohttp.ClientSession] = {}
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._guards: dict[str, ServerGuard] = {}
        self._replies = ReplyReader()
        self._ids = itertools.count(1)

    def guard(self, name: str) -> ServerGuard:
        found = self._guards.get(name)
        if found is None:
            found = self._guards[name] = ServerGuard(name, self._settings(name))
        return found

    def client(self, name: str) -> aiohttp.ClientSession:
        """The server's own client and connection pool, created on first use, inside the
        serving event loop."""
        if self._shared is not None:
            return self._shared
        found = self._clients.get(name)
        if found is None or found.closed:
            found = self._clients[name] = aiohttp.ClientSession(
                timeout=TIMEOUT,
                # Idle connections are dropped before the upstream's own keep-alive timeout
                # (5 s in uvicorn) can close one under a call.
                connector=aiohttp.TCPConnector(
                    limit=self.guard(name).settings.connections, keepalive_timeout=4
                ),
                # No cookies kept from one upstream answer for the next call.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return found

    async def aclose(self) -> None:
        for client in [*self._clients.values(), *([self._shared] if self._shared else [])]:
            await client.close()
        self._clients.clear()
        self._shared = None
        self._sessions.clear()

    # ---- what the gate asks ---------------------------------------------------------------
    async def list_tools(self, server: McpServer) -> list[dict[str, Any]]:
        """The upstream's tools that are registered here (all pages, within the listing's
        byte and tool budgets), cached for a few seconds."""
        session = self._sessions.get(server.name)
        if (
            session is not None
            and _fresh(session, server)
            and session.tools is not None
            and time.monotonic() < session.tools_expire
        ):
            return session.tools
        settings = self.guard(server.name).settings
        budget = ReplyBudget(
            settings.max_tools_bytes, "tool listing", settings.max_reply_containers
        )
        tools: list[dict[str, Any]] = []
        listed = 0
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            reply = await self.request(
                server, "tools/list", {"cursor": cursor} if cursor else {}, budget
            )
            result = reply.get("result")
            if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                raise UpstreamError(f"tools/list failed upstream: {_describe(reply)}")
            listed += len(result["tools"])
            if listed > settings.max_tools:
                raise UpstreamError(f"the upstream lists more than {settings.max_tools} tools")
            # Only what can be shown is kept.
            tools += [
                t for t in result["tools"] if isinstance(t, dict) and t.get("name") in server.tools
            ]
            cursor = result.get("nextCursor") if isinstance(result.get("nextCursor"), str) else None
            if not cursor:
                break
        current = self._sessions.get(server.name)
        if current is not None:
            current.tools, current.tools_expire = tools, time.monotonic() + TOOLS_TTL_SECONDS
        return tools

    async def request(
        self,
        server: McpServer,
        method: str,
        params: dict[str, Any],
        budget: ReplyBudget | None = None,
    ) -> dict[str, Any]:
        """Send one request under the server's limits; return the upstream's JSON-RPC
        response (`result` or `error`). Raises ServerBusy (at once) or UpstreamError."""
        guard = self.guard(server.name)
        settings = guard.settings
        budget = budget or ReplyBudget(
            settings.max_reply_bytes, containers=settings.max_reply_containers
        )
        try:
            async with asyncio.timeout(settings.call_timeout_seconds):
                async with guard.slot():
                    reply = await self._request(server, method, params, budget)
        except ServerBusy:
            raise
        except TimeoutError:
            guard.failed()
            raise UpstreamError(
                f"no answer within {settings.call_timeout_seconds:g} s (the call's deadline)"
            ) from None
        except UpstreamError:
            guard.failed()
            raise
        guard.succeeded()
        return reply

    async def _request(
        self, server: McpServer, method: str, params: dict[str, Any], budget: ReplyBudget
    ) -> dict[str, Any]:
        session = await self._session(server)
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            reply, _ = await self._post(server.name, session, message, budget)
        except _SessionGone:
            session = await self._session(server, stale=session)
            try:
                reply, _ = await self._post(server.name, session, message, budget)
            except _SessionGone:
                raise UpstreamError("the upstream rejected a brand-new session") from None
        if reply is None:
            raise UpstreamError(f"the upstream sent no answer to {method}")
        return reply

    # ---- sessions -------------------------------------------------------------------------
    async def _session(self, server: McpServer, stale: _Session | None = None) -> _Session:
        current = self._sessions.get(server.name)
        if current is not None and current is not stale and _fresh(current, server):
            return current
        lock = self._locks.setdefault(server.name, asyncio.Lock())
        seconds = self.guard(server.name).settings.initialize_timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                await lock.acquire()
        except TimeoutError:
            raise UpstreamError(
                f"another caller's initialize took over {seconds:g} s; not waiting longer"
            ) from None
        try:
            current = self._sessions.get(server.name)
            if current is not None and current is not stale and _fresh(current, server):
                return current
            try:
                async with asyncio.timeout(seconds):
                    session = await self._initialize(server)
            except TimeoutError:
                raise UpstreamError(f"initialize got no answer within {seconds:g} s") from None
            self._sessions[server.name] = session
            return session
        finally:
            lock.release()

    async def _initialize(self, server: McpServer) -> _Session:
        session = _Session(server.url, server.revision, await self._auth_headers(server.name))
        hello = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": "initialize",
            "params": {
                "protocolVersion": HANDSHAKE_VERSIONS[0],
                "capabilities": {},
                "clientInfo": CLIENT_INFO,
            },
        }
        try:
            settings = self.guard(server.name).settings
            budget = ReplyBudget(settings.max_reply_bytes, containers=settings.max_reply_containers)
            reply, session_id = await self._post(server.name, session, hello, budget)
        except _SessionGone:
            raise UpstreamError("the upstream answered 404 to initialize") from None
        result = (reply or {}).get("result")
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if version not in HANDSHAKE_VERSIONS:
            raise UpstreamError(f"initialize failed upstream: {_describe(reply)}")
        session.session_id, session.protocol_version = session_id, version
        try:
            await self._post(
                server.name, session, {"jsonrpc": "2.0", "method": "notifications/initialized"}
            )
        except _SessionGone:
            raise UpstreamError("the upstream forgot the session it just created") from None
        return session

    # ---- one POST -------------------------------------------------------------------------
    async def _post(
        self,
        name: str,
        session: _Session,
        message: dict[str, Any],
        budget: ReplyBudget | None = None,
    ) -> tuple[dict[str, Any] | None, str | None]:
        """POST one message; return the response to it (None for a notification) and the
        session id the upstream named."""
        headers = {
            **session.auth,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if session.session_id:
            headers["Mcp-Session-Id"] = session.session_id
        if session.protocol_version:
            headers["MCP-Protocol-Version"] = session.protocol_version
        body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
        try:
            async with self.client(name).post(
                session.url,
                data=body,
                headers=headers,
                allow_redirects=False,  # never carry the provider's credential elsewhere
            ) as r:
                if r.status == 404 and session.session_id:
                    raise _SessionGone()
                session_id = r.headers.get("mcp-session-id")
                if "id" not in message:
                    if r.status >= 400:
                        raise UpstreamError(f"the upstream answered HTTP {r.status}")
                    return None, session_id
                reply = await self._replies.answer(r, message["id"], budget or ReplyBudget(0))
                return reply, session_id
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"cannot reach the upstream: {_reason(exc)}") from None


def _fresh(session: _Session, server: McpServer) -> bool:
    return session.url == server.url and session.revision == server.revision


def _describe(reply: dict[str, Any] | None) -> str:
    error = (reply or {}).get("error")
    if isinstance(error, dict):
        return f"{error.get('code')} {str(error.get('message'))[:200]}"
    return "unexpected answer"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
