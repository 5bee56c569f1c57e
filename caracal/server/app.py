"""The ASGI application: health, metrics, the authorisation API and the MCP gate."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from caracal.server import forward_auth
from caracal.server.authorize import handle
from caracal.server.gateway import PREFIX, ProviderGateway
from caracal.server.health import (
    Check,
    check_ledger_writer,
    check_redis,
    check_store,
    failure,
)
from caracal.server.jwks import endpoints as verification_endpoints
from caracal.server.mcp_gate import McpGate
from caracal.server.runtime import Runtime
from caracal.services import change_feed

log = logging.getLogger("caracal.server")

# Requests in flight at once on everything but /health and /v1/authorize (the MCP gate,
# /metrics, the rest).
OTHER_REQUESTS = 1024


def create_app(workspace: str | None = None) -> Starlette:
    runtime = Runtime(workspace)

    def _checks() -> list[Check]:
        try:
            checks = [check_store(runtime.caracal)]
            redis_url = change_feed.redis_url(runtime.caracal)
        except Exception as exc:
            return [Check("store", False, failure("store", exc))]
        halted = runtime.authorizer.halted
        checks.append(Check("ledger", halted is None, halted or "head signed and not rolled back"))
        checks.append(check_ledger_writer(*runtime.ledger_writer))
        redis = check_redis(redis_url)
        return checks + ([redis] if redis else [])

    async def health(_: Request) -> JSONResponse:
        checks = await run_in_threadpool(_checks)
        ok = all(c.ok for c in checks)
        body = {
            "status": "ok" if ok else "unavailable",
            "failing": [c.name for c in checks if not c.ok],
            "dependencies": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(_: Request) -> PlainTextResponse:
        return PlainTextResponse(
            runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    limit = int(os.environ.get("CARACAL_MAX_BODY_BYTES") or 65_536)

    async def authorize(request: Request) -> Response:
        # Only reached for what the fast path below leaves alone; kept so that routing
        # answers other methods with 405.
        return JSONResponse({"error": "method_not_allowed"}, status_code=405)

    gate = McpGate(runtime)
    gateway = ProviderGateway(runtime)

    async def provider_call(request: Request) -> Response:
        # Only for the route table (and its documentation): FastPath answers the gateway
        # and forward authentication first.
        return JSONResponse({"error": "not_found"}, status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await gate.aclose()
            await gateway.aclose()
            await runtime.stop()

    jwks, revocations = verification_endpoints(runtime)
    routes: list[BaseRoute] = [
        Route("/health", health),
        Route("/.well-known/jwks.json", jwks),
        Route("/v1/revocations", revocations),
        Route("/metrics", metrics),
        Route("/v1/authorize", authorize, methods=["POST"]),
        Route(
            "/v1/providers/{provider}/{path:path}",
            provider_call,
            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        ),
        Route(
            "/v1/forward-auth",
            provider_call,
            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        ),
    ]
    routes.append(Mount("/mcp", routes=gate.routes()))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    fast = FastPath(app, runtime, limit, gate)
    fast.gateway = gateway
    return fast  # type: ignore[return-value]


class FastPath:
    """`POST /v1/authorize` and the MCP gate's `/mcp/<server>` straight to their handlers (the
    framework's routing and middleware cost about a tenth of a gated call); everything else
    to Starlette."""

    def __init__(self, app: Starlette, runtime: Runtime, limit: int, gate: McpGate) -> None:
        self.app = app
        self.runtime = runtime
        self.limit = limit
        self.gate = gate
        self.gateway: ProviderGateway | None = None
        self.state = app.state
        # In-flight requests other than /health and /v1/authorize: past the share they are
        # given, they are answered 503 so that decisions and health checks always have room.
        self.others = 0
        self.others_limit = int(os.environ.get("CARACAL_MAX_OTHER_REQUESTS") or OTHER_REQUESTS)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/v1/authorize" and scope["method"] == "POST":
            await handle(self.runtime, self.limit, scope, receive, send)
            return
        if path == "/health":
            await self.app(scope, receive, send)
            return
        # Forward-auth answers decisions for a gateway in front: it has the decisions' room.
        if self.gateway is not None and forward_auth.covers(path):
            await forward_auth.handle(self.gateway, scope, receive, send)
            return
        if self.others >= self.others_limit:
            await _busy(send)
            return
        self.others += 1
        try:
            if path.startswith(PREFIX) and self.gateway is not None:
                await self.gateway.handle(scope, receive, send)
                return
            server = path[5:] if path.startswith("/mcp/") else ""
            if server and "/" not in server:
                await self._gate(scope, receive, send, server)
            else:
                await self.app(scope, receive, send)
        finally:
            self.others -= 1

    async def _gate(self, scope: Any, receive: Any, send: Any, server: str) -> None:
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = True
            await send(message)

        request = Request({**scope, "path_params": {"server": server}}, receive)
        try:
            response = await self.gate.handle(request)
            await response(scope, receive, tracked)
        except Exception:
            log.exception("mcp %s: unhandled error", server)
            if started:
                raise
            body = {"code": -32603, "message": "Internal error; the runtime's log has details."}
            error = JSONResponse({"jsonrpc": "2.0", "id": None, "error": body}, 500)
            await error(scope, receive, send)


async def _busy(send: Any) -> None:
    body = b'{"error":"busy","message":"too many requests in flight; retry shortly"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def app_from_env() -> Starlette:
    """For `caracal serve --workers N`: each worker process builds its own app."""
    return create_app(os.environ.get("CARACAL_SERVE_WORKSPACE") or None)
