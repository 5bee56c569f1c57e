"""The provider gateway: `ANY /v1/providers/<provider>/<path>` with the agent's mandate in
`Authorization: Bearer`. The call is judged (`call_judge`: the declared action its method and
path select, decided and in the ledger before anything is sent), and then streamed to the
provider with the provider's credential in place of the mandate, through the header hygiene of
`services.gateway` both ways.

A bare ASGI handler: bodies stream both ways in chunks, never read whole."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from caracal.server.call_judge import DECISION, CallJudge
from caracal.server.outcomes import Outcome
from caracal.server.requests import DRAIN_BYTES, BadRequest, drain
from caracal.server.runtime import Runtime
from caracal.services.gateway import (
    GatewayRoute,
    GatewayTarget,
    inbound_headers,
    outbound_headers,
    outbound_url,
)

log = logging.getLogger("caracal.server.gateway")

PREFIX = "/v1/providers/"


class _TooLarge(Exception):
    pass


class ProviderGateway(CallJudge):
    """One per runtime: the judging of calls (its base class), and the outbound connection
    pool the allowed ones are forwarded through."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            settings = self.runtime.caracal.config.runtime.gateway
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=settings.connect_timeout_seconds,
                    sock_read=settings.read_timeout_seconds,
                ),
                auto_decompress=False,  # bodies pass through byte for byte
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                connector=aiohttp.TCPConnector(limit=256),
                # One client serves every agent: a cookie kept from one answer would go out
                # with the next agent's call. Cookies pass through as headers, never kept.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        lowered = {k.lower(): v for k, v in headers}
        provider, _, rest = scope["path"][len(PREFIX) :].partition("/")
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        raw_rest = "/" + raw[len(PREFIX) :].partition("/")[2]
        query = scope.get("query_string", b"").decode("latin-1")
        limit = self.runtime.caracal.config.runtime.gateway.max_body_bytes
        try:
            declared = _declared_length(lowered, limit)
        except BadRequest as exc:
            self.runtime.metrics.rejected(exc.status)
            await _json(send, exc.status, exc.body(), None)
            return
        verdict = await self.judge(
            provider=provider,
            method=scope["method"],
            path="/" + rest,
            raw_path=raw_rest,
            headers=lowered,
            client=(scope.get("client") or ("unknown",))[0],
            source="gateway",
        )
        if verdict.target is None or verdict.pair is None or verdict.outcome is None:
            await _drain_small(receive, declared)
            await _json(send, verdict.status, verdict.body, verdict.decision_id, verdict.extra)
            return
        await self._forward(
            scope,
            receive,
            send,
            verdict.target,
            verdict.pair,
            verdict.outcome,
            headers,
            raw_rest,
            query,
            limit,
        )

    async def _forward(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        target: GatewayTarget,
        pair: GatewayRoute,
        outcome: Outcome,
        headers: list[tuple[str, str]],
        raw_path: str,
        query: str,
        limit: int,
    ) -> None:
        decision = (outcome.decision_id or "").encode()
        url = outbound_url(target, raw_path, query)
        has_body = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers)
        data = _request_body(receive, limit) if has_body else None
        started = False
        try:
            async with self._client().request(
                scope["method"],
                url,
                headers=outbound_headers(target, headers),
                data=data,
                allow_redirects=False,
                compress=None,
            ) as reply:
                answer = [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in inbound_headers(
                        target,
                        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in reply.raw_headers],
                    )
                ]
                await send(
                    {
                        "type": "http.response.start",
                        "status": reply.status,
                        "headers": [*answer, (DECISION, decision)],
                    }
                )
                started = True
                sent = 0
                async for chunk in reply.content.iter_any():
                    sent += len(chunk)
                    if sent > limit:
                        raise _TooLarge
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except _TooLarge:
            if started:
                log.warning("%s: answer over %d bytes cut off", pair.action, limit)
                raise
            await _json(
                send,
                413,
                {
                    "error": "payload_too_large",
                    "field": None,
                    "message": f"body is larger than {limit} bytes",
                },
                decision.decode(),
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            if started:
                raise
            await _json(
                send,
                504,
                _upstream("upstream_timeout", "the provider did not answer in time"),
                decision.decode(),
            )
        except aiohttp.ClientError as exc:
            if started:
                raise
            log.warning("%s: provider unreachable: %s", pair.action, type(exc).__name__)
            await _json(
                send,
                502,
                _upstream("upstream_unreachable", "the provider could not be reached"),
                decision.decode(),
            )


def _upstream(error: str, message: str) -> dict[str, Any]:
    return {"error": error, "field": None, "message": message}


async def _request_body(receive: Any, limit: int) -> AsyncIterator[bytes]:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _declared_length(headers: dict[str, str], limit: int) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        declared = int(value)
    except ValueError:
        raise BadRequest(400, "Content-Length is not a number") from None
    if declared > limit:
        raise BadRequest(413, f"body is larger than {limit} bytes")
    return declared


async def _drain_small(receive: Any, declared: int | None) -> None:
    """Read a refused call's body when it is small (see `requests.drain`)."""
    if declared is not None and declared <= DRAIN_BYTES:
        await drain(receive)


async def _json(
    send: Any,
    status: int,
    body: dict[str, Any],
    decision: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (DECISION, (decision or "").encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
