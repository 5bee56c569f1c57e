"""The provider gateway: `ANY /v1/providers/<provider>/<path>` with the agent's mandate in
`Authorization: Bearer`. The call is decided as the declared action its method and path select
(`services.gateway`), the decision is in the ledger before anything is sent, and then the call
is streamed to the provider with the provider's credential in place of the mandate.

A bare ASGI handler: bodies stream both ways in chunks, never read whole."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from caracal.server.authorizer import lazy_connection
from caracal.server.outcomes import LedgerUnavailable, Outcome, RateLimited
from caracal.server.requests import DRAIN_BYTES, BadRequest, drain, parse_json
from caracal.server.runtime import Runtime
from caracal.server.statuses import challenge, denial_status
from caracal.services.denial_aggregator import ANONYMOUS
from caracal.services.gateway import (
    GatewayRefused,
    GatewayRoute,
    GatewayTarget,
    inbound_headers,
    load_target,
    outbound_headers,
    outbound_url,
    refusal_event,
    route,
)

log = logging.getLogger("caracal.server.gateway")

PREFIX = "/v1/providers/"
DECISION = b"x-caracal-decision"
CALLER = "x-caracal-caller"
INTENT = "x-caracal-intent"
MAX_INTENT = 16_384
CHUNK = 64 * 1024


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Verdict:
    """How a call was judged: the answer to give, and for an allowed call what to forward."""

    status: int
    body: dict[str, Any]
    extra: list[tuple[bytes, bytes]] | None = None
    target: GatewayTarget | None = None
    pair: GatewayRoute | None = None
    outcome: Outcome | None = None

    @property
    def decision_id(self) -> str | None:
        value = self.body.get("decision_id")
        return value if isinstance(value, str) else None

    @property
    def reason_code(self) -> str | None:
        value = self.body.get("reason_code") or self.body.get("error")
        return value if isinstance(value, str) else None


class ProviderGateway:
    """One per runtime: the routing and the outbound connection pool."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
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

    def _target(self, name: str) -> GatewayTarget:
        """The provider, cached behind the authority version (every provider change moves
        it); an unknown name raises GatewayRefused and is never cached."""
        authorizer = self.runtime.authorizer
        with lazy_connection(authorizer.app) as connection:
            found: GatewayTarget = authorizer.cache.read(
                "gateway", name, lambda: load_target(authorizer.app, name), connection
            )
            return found

    async def judge(
        self,
        *,
        provider: str,
        method: str,
        path: str,
        raw_path: str,
        headers: dict[str, str],
        client: str,
        source: str,
    ) -> Verdict:
        """Decide one call (`headers` lower-cased): the pair its method and path select on
        the provider, the mandate in its Authorization header for that pair, recorded. Shared
        by the gateway and forward authentication."""
        try:
            return await self._judge(provider, method, path, raw_path, headers, client, source)
        except Exception:
            # Undecided is refused: nothing is forwarded.
            log.exception("%s %s: not decided", source, provider[:64])
            return Verdict(
                503,
                _denied("INTERNAL_ERROR", "the call could not be decided, so it is refused", None),
            )

    async def _judge(
        self,
        provider: str,
        method: str,
        path: str,
        raw_path: str,
        headers: dict[str, str],
        client: str,
        source: str,
    ) -> Verdict:
        authorizer = self.runtime.authorizer
        token = _bearer(headers.get("authorization"))
        try:
            caller = headers.get(CALLER) or None
            intent = _intent(headers.get(INTENT))
            if token is None:
                decision = authorizer.denials.count(
                    "TOKEN_MISSING", client, {"source": source, "provider": provider[:64]}
                )
                body = _denied("TOKEN_MISSING", "no bearer token", decision)
                return Verdict(401, body, challenge("TOKEN_MISSING"))
            # Before routing: a client over its budget is refused before an unknown provider
            # (never cached) costs a store read, or a refusal is recorded.
            authorizer.admit(client)
            try:
                target = self._target(provider)
                pair = route(target, method, path, raw_path)
            except GatewayRefused as refused:
                recorded = await self._record_refusal(
                    refused, provider, method, path, token, caller, client, source
                )
                body = _denied(refused.reason_code, refused.reason, recorded)
                return Verdict(refused.status, body)
            outcome = await authorizer.decide(
                token,
                pair.action,
                pair.resource,
                caller=caller,
                intent=intent,
                source=source,
                client=client,
                detail={"method": method, "path": path[:256]},
                admitted=True,
            )
        except BadRequest as exc:
            self.runtime.metrics.rejected(exc.status)
            return Verdict(exc.status, exc.body())
        except RateLimited as exc:
            retry = str(max(1, round(exc.retry_after)))
            return Verdict(
                429,
                {"error": "rate_limited", "field": None, "message": str(exc)},
                [(b"retry-after", retry.encode())],
            )
        except LedgerUnavailable as exc:
            return Verdict(503, _denied("LEDGER_UNAVAILABLE", exc.reason, None))
        body = _denied(outcome.reason_code, outcome.reason, outcome.decision_id)
        if outcome.allowed:
            body = {
                "allowed": True,
                "mandate_id": outcome.mandate_id,
                "decision_id": outcome.decision_id,
            }
            return Verdict(200, body, target=target, pair=pair, outcome=outcome)
        code = outcome.reason_code
        return Verdict(denial_status(code), body, challenge(code))

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

    async def _record_refusal(
        self,
        refused: GatewayRefused,
        provider: str,
        method: str,
        path: str,
        token: str,
        caller: str | None,
        client: str,
        source: str,
    ) -> str | None:
        """A refused call is a decision too: recorded one event each when the token names a
        mandate of this workspace, counted in aggregate otherwise (garbage cannot grow the
        ledger)."""
        authorizer = self.runtime.authorizer
        probe: Outcome = await authorizer.check(token, "-", "-", caller)
        if probe.reason_code in ANONYMOUS:
            return authorizer.denials.count(
                probe.reason_code, client, {"source": source, "provider": provider[:64]}
            )
        decision_id = authorizer.ids.new()
        await authorizer.record(
            refusal_event(
                refused,
                provider,
                method,
                path,
                token,
                decision_id=decision_id,
                source=source,
                caller=caller,
                mandate_id=probe.mandate_id,
                subject_id=probe.subject_id,
            )
        )
        authorizer.metrics.observe(refused.reason_code, 0.0)
        return decision_id

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


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


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


def _intent(header: str | None) -> Any:
    """`X-Caracal-Intent`: JSON, read by the one strict reader as `/v1/authorize` reads it."""
    if header is None:
        return None
    if len(header) > MAX_INTENT:
        raise BadRequest(400, f"X-Caracal-Intent is longer than {MAX_INTENT} characters", "intent")
    try:
        return parse_json(header.encode("latin-1"))
    except BadRequest as exc:
        raise BadRequest(400, f"X-Caracal-Intent: {exc.message}", "intent") from None


async def _drain_small(receive: Any, declared: int | None) -> None:
    """Read a refused call's body when it is small (see `requests.drain`)."""
    if declared is not None and declared <= DRAIN_BYTES:
        await drain(receive)


def _denied(code: str, reason: str, decision: str | None) -> dict[str, Any]:
    return {"allowed": False, "reason_code": code, "reason": reason, "decision_id": decision}


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
