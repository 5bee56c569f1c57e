"""`GET /.well-known/jwks.json` and `GET /v1/revocations?since=N`: what a verifier outside
the runtime needs to check mandates offline (`services.verification_feed`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from caracal.core.errors import ValidationError
from caracal.server.runtime import Runtime
from caracal.services import verification_feed

Endpoint = Callable[[Request], Awaitable[Response]]


def endpoints(runtime: Runtime) -> tuple[Endpoint, Endpoint]:
    async def jwks(_: Request) -> Response:
        body = await run_in_threadpool(verification_feed.jwks, runtime.caracal)
        # Keys change rarely and a stale set only fails closed (an unknown kid): cache briefly.
        return JSONResponse(
            body,
            media_type="application/jwk-set+json",
            headers={"Cache-Control": "max-age=30"},
        )

    async def revocations(request: Request) -> Response:
        text = request.query_params.get("since", "0")
        if not text.isdigit() or len(text) > 18:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "field": "since",
                    "message": "since must be 0 or more",
                },
                status_code=400,
            )
        try:
            body = await run_in_threadpool(
                verification_feed.revocations, runtime.caracal, int(text)
            )
        except ValidationError as exc:
            return JSONResponse(
                {"error": "invalid_request", "field": "since", "message": exc.message},
                status_code=400,
            )
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return jwks, revocations
