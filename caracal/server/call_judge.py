"""Judging one provider call, for the provider gateway and forward authentication alike: the
declared action its method and path select on the provider (`services.gateway`), the mandate
in its Authorization header decided for that pair, and the decision (or the refusal of a call
no pair matches) in the ledger before the verdict is given."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from caracal.server.authorizer import lazy_connection
from caracal.server.outcomes import LedgerUnavailable, Outcome, RateLimited
from caracal.server.requests import BadRequest, bearer, parse_json
from caracal.server.runtime import Runtime
from caracal.server.statuses import challenge, denial_status
from caracal.services.denial_aggregator import ANONYMOUS
from caracal.services.gateway import (
    GatewayRefused,
    GatewayRoute,
    GatewayTarget,
    load_target,
    refusal_event,
    route,
)

log = logging.getLogger("caracal.server.gateway")

# The header naming the decision on every answer, forwarded or refused.
DECISION = b"x-caracal-decision"
CALLER = "x-caracal-caller"
INTENT = "x-caracal-intent"
MAX_INTENT = 16_384


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


class CallJudge:
    """Judges calls to the providers of one runtime (the provider gateway's base class, so that
    judging costs a forwarded call no extra call)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

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
        token = bearer(headers.get("authorization"))
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


def _denied(code: str, reason: str, decision: str | None) -> dict[str, Any]:
    return {"allowed": False, "reason_code": code, "reason": reason, "decision_id": decision}
