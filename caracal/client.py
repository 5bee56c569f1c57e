"""Caracal for agent code: ask the runtime before acting, call providers through its gateway,
or verify a mandate offline. Needs only the standard library and `caracal.core` (no store,
Flow or Docker), so an agent can import it anywhere.

    client = Client("http://127.0.0.1:8080", token)
    client.authorize("provider:github:action:read", "provider:github:resource:repos")
    client.request("GET", "github", "/repos/acme/widgets")

    @guard(action="provider:github:action:write", resource="provider:github:resource:repos")
    def open_issue(...): ...
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core.jws import TokenError, decode
from caracal.core.keys import b64url_decode, verify
from caracal.core.mandates import MandateClaims

__all__ = [
    "Client",
    "Decision",
    "Denied",
    "OfflineVerdict",
    "Reply",
    "guard",
    "verify_offline",
]

RUNTIME_UNAVAILABLE = "RUNTIME_UNAVAILABLE"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason_code: str
    reason: str
    decision_id: str | None
    mandate_id: str | None = None


class Denied(Exception):
    """The call was not authorised; `reason_code` is Caracal's stable reason."""

    def __init__(self, reason_code: str, reason: str, decision_id: str | None = None) -> None:
        super().__init__(f"{reason_code}: {reason}")
        self.reason_code = reason_code
        self.reason = reason
        self.decision_id = decision_id


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def decision_id(self) -> str | None:
        return self.headers.get("x-caracal-decision") or None

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One agent's view of a runtime: its URL and the mandate the agent holds."""

    def __init__(
        self, runtime_url: str, token: str, *, caller: str | None = None, timeout: float = 10.0
    ) -> None:
        if not runtime_url.startswith(("http://", "https://")):
            raise ValueError(f"runtime_url must be http:// or https://, not {runtime_url!r}")
        self.runtime_url = runtime_url.rstrip("/")
        self.token = token
        self.caller = caller
        self.timeout = timeout

    def __repr__(self) -> str:  # the token is a bearer credential: never printed
        return f"Client({self.runtime_url!r})"

    @classmethod
    def from_env(cls) -> Client:
        """`CARACAL_RUNTIME_URL` and `CARACAL_MANDATE` (the token)."""
        url, token = os.environ.get("CARACAL_RUNTIME_URL"), os.environ.get("CARACAL_MANDATE")
        if not url or not token:
            raise RuntimeError("Set CARACAL_RUNTIME_URL and CARACAL_MANDATE, or pass a Client.")
        return cls(url, token)

    def authorize(self, action: str, resource: str, *, intent: Any = None) -> Decision:
        """The runtime's decision (recorded in its ledger). An unreachable runtime is a
        denial (`RUNTIME_UNAVAILABLE`), never an allow."""
        body: dict[str, Any] = {"token": self.token, "action": action, "resource": resource}
        if self.caller is not None:
            body["caller"] = self.caller
        if intent is not None:
            body["intent"] = intent
        reply = self._send(
            "POST",
            "/v1/authorize",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        try:
            data = reply.json()
        except ValueError:
            data = {}
        if reply.status == 200 and data.get("allowed") is True:
            return Decision(
                True, "ALLOWED", "allowed", data.get("decision_id"), data.get("mandate_id")
            )
        return Decision(
            False,
            str(data.get("reason_code") or data.get("error") or f"HTTP_{reply.status}"),
            str(data.get("reason") or data.get("message") or "denied"),
            data.get("decision_id"),
            data.get("mandate_id"),
        )

    def request(
        self,
        method: str,
        provider: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        intent: Any = None,
    ) -> Reply:
        """A call to `provider` through the runtime's gateway, which applies the provider's
        credential; the answer is the provider's (or the gateway's refusal)."""
        sent = dict(headers or {})
        if self.caller is not None:
            sent["X-Caracal-Caller"] = self.caller
        if intent is not None:
            sent["X-Caracal-Intent"] = json.dumps(intent)
        target = f"/v1/providers/{urllib.parse.quote(provider, safe='')}/{path.lstrip('/')}"
        if query:
            target += "?" + urllib.parse.urlencode(query)
        return self._send(method.upper(), target, body, sent)

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked in __init__)
            self.runtime_url + path,
            data=body,
            method=method,
            headers={**headers, "Authorization": f"Bearer {self.token}"},
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as reply:
                return Reply(reply.status, _lower(reply.headers.items()), reply.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, _lower(error.headers.items()), error.read())
        except (OSError, ValueError) as exc:
            reason = json.dumps({"reason_code": RUNTIME_UNAVAILABLE, "reason": str(exc)})
            return Reply(503, {}, reason.encode())


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is the provider's answer, handed back as it is


_OPENER = urllib.request.build_opener(_NoRedirects)


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


F = TypeVar("F", bound=Callable[..., Any])


def guard(
    *,
    action: str,
    resource: str,
    client: Client | Callable[[], Client] | None = None,
    intent: Callable[..., Any] | None = None,
) -> Callable[[F], F]:
    """Authorise before every call of the decorated tool function (sync or async); raise
    `Denied` with the reason code instead of calling it. `client` is a Client, a factory of
    one, or None for `Client.from_env()`; `intent`, when given, maps the call's arguments to
    the intent the mandate may be bound to."""

    def resolve() -> Client:
        if isinstance(client, Client):
            return client
        return client() if client is not None else Client.from_env()

    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        asked = intent(*args, **kwargs) if intent is not None else None
        decision = resolve().authorize(action, resource, intent=asked)
        if not decision.allowed:
            raise Denied(decision.reason_code, decision.reason, decision.decision_id)

    def decorate(function: F) -> F:
        if asyncio.iscoroutinefunction(function):

            @functools.wraps(function)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                await asyncio.to_thread(check, args, kwargs)
                return await function(*args, **kwargs)

            return cast(F, guarded_async)

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            return function(*args, **kwargs)

        return cast(F, guarded)

    return decorate


# ---- offline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineVerdict:
    """What could be decided without the runtime. `unchecked` names the checks (by the reason
    code they would give) that need the runtime; an allow is only as fresh as the revocation
    feed it was given."""

    allowed: bool
    reason_code: str
    reason: str
    mandate_id: str | None = None
    unchecked: tuple[str, ...] = field(default=())


def _public_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("not a P-256 key")
    x = int.from_bytes(b64url_decode(str(jwk["x"])), "big")
    y = int.from_bytes(b64url_decode(str(jwk["y"])), "big")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def _feeds(revocations: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None) -> list[Any]:
    if revocations is None:
        return []
    if isinstance(revocations, Mapping):
        return [revocations]
    return list(revocations)


class _Deny(Exception):
    def __init__(self, code: str, reason: str, mandate_id: str | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.mandate_id = code, reason, mandate_id


def _check_feed_signatures(feeds: list[Any], ledger_key: Mapping[str, Any]) -> None:
    from caracal.core.canonical import canonical_bytes

    pinned = _public_key(ledger_key)
    for feed in feeds:
        signed = {k: v for k, v in feed.items() if k != "signature"}
        value = (feed.get("signature") or {}).get("value", "")
        if not verify(pinned, canonical_bytes(signed), b64url_decode(str(value))):
            raise ValueError("a revocation feed is not signed by the pinned ledger key")


def _signed_claims(
    token: str, jwks: Mapping[str, Any], feeds: list[Any]
) -> tuple[MandateClaims, Mapping[str, Any]]:
    """The claims, once the token's form, workspace, key and signature check out."""
    try:
        parsed = decode(token)
        claims = MandateClaims.from_claims(parsed.claims)
    except TokenError as exc:
        raise _Deny(exc.code, exc.message) from None
    workspaces = {f.get("workspace_id") for f in feeds if f.get("workspace_id")}
    if workspaces and claims.workspace_id not in workspaces:
        raise _Deny("WORKSPACE_MISMATCH", "the mandate belongs to another workspace", claims.id)
    if parsed.kid in {k for f in feeds for k in f.get("revoked_keys") or []}:
        raise _Deny("KEY_REVOKED", "the signing key was revoked", claims.id)
    key = next((k for k in jwks.get("keys") or [] if k.get("kid") == parsed.kid), None)
    if key is None:
        raise _Deny("KEY_UNKNOWN", "the signing key is not in the JWK Set", claims.id)
    try:
        public = _public_key(key)
    except (KeyError, ValueError):
        raise _Deny("KEY_UNKNOWN", "the JWK Set's key is not a P-256 key", claims.id) from None
    if not verify(public, parsed.signing_input, parsed.signature) or key.get(
        "principal_id"
    ) not in (None, claims.issuer_id):
        raise _Deny("SIGNATURE_INVALID", "the signature does not verify", claims.id)
    return claims, key


def _check_state(
    claims: MandateClaims, key: Mapping[str, Any], feeds: list[Any], now: float, leeway: int
) -> None:
    revoked = {m for f in feeds for m in f.get("revoked_mandates") or []}
    if claims.id in revoked:
        raise _Deny("MANDATE_REVOKED", "the mandate was revoked", claims.id)
    if now + leeway < claims.not_before:
        raise _Deny("MANDATE_NOT_YET_VALID", "the mandate is not valid yet", claims.id)
    if now - leeway >= claims.expires_at:
        raise _Deny("MANDATE_EXPIRED", "the mandate has expired", claims.id)
    statuses: dict[str, str] = {}
    for feed in sorted(feeds, key=lambda f: int(f.get("until") or 0)):
        for change in feed.get("principal_status") or []:
            statuses[str(change.get("id"))] = str(change.get("status"))
    active = ("active", "activated")
    issuer = statuses.get(claims.issuer_id, key.get("principal_status", "active"))
    if issuer not in active:
        raise _Deny("ISSUER_INACTIVE", "the issuer is suspended or revoked", claims.id)
    if statuses.get(claims.subject_id, "active") not in active:
        raise _Deny("SUBJECT_INACTIVE", "the subject is suspended or revoked", claims.id)
    if claims.parent_id is not None and claims.parent_id in revoked:
        raise _Deny("DELEGATION_CHAIN_INVALID", "the parent mandate was revoked", claims.id)


def _check_scopes(claims: MandateClaims, action: str, resource: str) -> None:
    if action not in claims.actions:
        raise _Deny("ACTION_OUT_OF_SCOPE", f"action {action} is not granted", claims.id)
    if resource not in claims.resources:
        raise _Deny("RESOURCE_OUT_OF_SCOPE", f"resource {resource} is not granted", claims.id)
    if not claims.allows(resource, action):
        raise _Deny("ACTION_OUT_OF_SCOPE", f"{action} is not granted on {resource}", claims.id)


def verify_offline(
    token: str,
    jwks: Mapping[str, Any],
    revocations: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None,
    action: str,
    resource: str,
    *,
    now: float | None = None,
    leeway_seconds: int = 30,
    ledger_key: Mapping[str, Any] | None = None,
) -> OfflineVerdict:
    """The runtime's checks that can be made from the JWK Set (`/.well-known/jwks.json`) and
    the revocation feeds (`/v1/revocations`) alone, in the runtime's order. With `ledger_key`
    (the pinned public JWK of the workspace ledger key) each feed's signature is checked, and
    a feed that does not verify is refused with ValueError."""
    feeds = _feeds(revocations)
    if ledger_key is not None:
        _check_feed_signatures(feeds, ledger_key)
    # Ancestors other than a revoked parent, and whether the store still holds the mandate.
    unchecked = ["DELEGATION_CHAIN_INVALID", "MANDATE_UNKNOWN"]
    try:
        claims, key = _signed_claims(token, jwks, feeds)
        _check_state(claims, key, feeds, time.time() if now is None else now, leeway_seconds)
        _check_scopes(claims, action, resource)
    except _Deny as deny:
        return OfflineVerdict(False, deny.code, deny.reason, deny.mandate_id, tuple(unchecked))
    if claims.intent_hash is not None:
        unchecked.append("INTENT_MISMATCH")
    return OfflineVerdict(True, "ALLOWED", "allowed offline", claims.id, tuple(unchecked))
