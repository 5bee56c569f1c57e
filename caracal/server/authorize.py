"""`POST /v1/authorize` as a bare ASGI handler: the hot path skips the framework's routing and
middleware (the rest of the app is Starlette)."""

from __future__ import annotations

import json
from typing import Any

from caracal.server.outcomes import LedgerUnavailable, Outcome, RateLimited
from caracal.server.requests import DRAIN_BYTES, BadRequest, authorize_request, drain
from caracal.server.runtime import Runtime
from caracal.server.statuses import challenge, denial_status

Scope = dict[str, Any]
_JSON = [(b"content-type", b"application/json")]


def answer(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    if outcome.allowed:
        return 200, {
            "allowed": True,
            "mandate_id": outcome.mandate_id,
            "decision_id": outcome.decision_id,
        }
    return denial_status(outcome.reason_code), {
        "allowed": False,
        "reason_code": outcome.reason_code,
        "reason": outcome.reason,
        "decision_id": outcome.decision_id,
    }


UNRECORDED = {
    "allowed": False,
    "reason_code": "LEDGER_UNAVAILABLE",
    "reason": "the decision could not be recorded, so it is not given",
    "decision_id": None,
}


async def _body(scope: Scope, receive: Any, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise BadRequest(400, "Content-Length is not a number") from None
            if declared > limit:
                if declared <= DRAIN_BYTES:
                    await drain(receive)
                raise BadRequest(413, f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            if message.get("more_body", False):
                await drain(receive, DRAIN_BYTES - size)
            raise BadRequest(413, f"body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Any, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [*_JSON, (b"content-length", str(len(data)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def handle(runtime: Runtime, limit: int, scope: Scope, receive: Any, send: Any) -> None:
    try:
        ask = authorize_request(await _body(scope, receive, limit))
    except BadRequest as exc:
        runtime.metrics.rejected(exc.status)
        await _send(send, exc.status, exc.body())
        return
    try:
        outcome = await runtime.authorizer.decide(
            ask.token,
            ask.action,
            ask.resource,
            caller=ask.caller,
            intent=ask.intent,
            client=(scope.get("client") or ("unknown",))[0],
        )
    except RateLimited as exc:
        retry = str(max(1, round(exc.retry_after)))
        await _send(
            send,
            429,
            {"error": "rate_limited", "field": None, "message": str(exc)},
            [(b"retry-after", retry.encode())],
        )
        return
    except LedgerUnavailable as exc:
        await _send(send, 503, {**UNRECORDED, "reason": exc.reason})
        return
    status, body = answer(outcome)
    await _send(send, status, body, None if outcome.allowed else challenge(outcome.reason_code))
