"""The ASGI application: `GET /health` (200 when every dependency answers, 503 naming the one
that does not)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from caracal.server.health import check_redis, check_store
from caracal.services.facade import Caracal


def create_app(workspace: str | None = None) -> Starlette:
    state: dict[str, Any] = {}

    def _app() -> Caracal:
        if "app" not in state:
            state["app"] = Caracal.open(workspace)
        app: Caracal = state["app"]
        return app

    def _checks() -> list[Any]:
        try:
            checks = [check_store(_app())]
        except Exception as exc:
            from caracal.server.health import Check

            checks = [Check("store", False, str(exc).strip().splitlines()[0][:200])]
        redis = check_redis(os.environ.get("CARACAL_REDIS_URL"))
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

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if "app" in state:
            state["app"].close()

    return Starlette(routes=[Route("/health", health)], lifespan=lifespan)
