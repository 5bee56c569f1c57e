"""The provider gateway's rules: which declared action a call is, where it goes, and which
headers travel with it (the provider's credential in, the agent's mandate out). The HTTP side
lives in `caracal/server/call_judge.py` (judging a call) and `caracal/server/gateway.py`
(forwarding it)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode

from caracal.core.errors import NotFoundError
from caracal.core.ledger import NewEvent
from caracal.core.providers import PASSTHROUGH_ID, ProviderSpec, select_action, unsafe_path
from caracal.core.reasons import GATEWAY_REFUSALS
from caracal.core.scopes import action_scope, resource_scope
from caracal.services.probe import auth_headers, auth_query

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

# RFC 9110 section 7.6.1, plus what a proxy must not pass on either way.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# Headers addressed to Caracal itself: never forwarded.
OWN_PREFIX = "x-caracal-"


@dataclass(frozen=True)
class GatewayTarget:
    """A provider as the gateway needs it; the credential is never printed."""

    spec: ProviderSpec
    credential: str | None = field(repr=False)
    passthrough_open: bool
    # Whether forward authentication may hand the credential to the gateway in front.
    credential_released: bool = False

    def credential_headers(self) -> dict[str, str]:
        return auth_headers(self.spec, self.credential)

    def credential_query(self) -> dict[str, str]:
        return auth_query(self.spec, self.credential)


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """The (action, resource) pair a call is decided as."""

    action: str
    resource: str


class GatewayRefused(Exception):
    """A call the gateway refuses before any mandate could allow it."""

    def __init__(self, reason_code: str, detail: str | None = None, status: int = 403) -> None:
        self.reason_code = reason_code
        self.reason = detail or GATEWAY_REFUSALS[reason_code]
        self.status = status
        super().__init__(self.reason)


def load_target(app: Caracal, name: str) -> GatewayTarget:
    """The provider, its credential and whether it is opened as a passthrough; raises
    GatewayRefused(PROVIDER_UNKNOWN) for a name that is no provider."""
    try:
        view = app.providers.get(name)
    except NotFoundError:
        raise GatewayRefused("PROVIDER_UNKNOWN", f"no provider {name!r}", 404) from None
    credential = app.providers.credential(name) if view.spec.auth != "none" else None
    settings = app.config.runtime.gateway
    released = name in settings.forward_auth_credential
    return GatewayTarget(view.spec, credential, name in settings.passthrough, released)


def released_credential(target: GatewayTarget, peer: str, peers: list[str]) -> dict[str, str]:
    """What an allowed forward-auth answer carries for the gateway in front to inject: the
    credential's header name and value, only for a provider the operator opted in and a peer
    on the list (an agent asking directly must not walk away with the credential)."""
    if not target.credential_released or peer not in peers:
        return {}
    for name, value in target.credential_headers().items():
        return {"X-Caracal-Credential-Header": name, "X-Caracal-Credential": value}
    return {}


def route(target: GatewayTarget, method: str, path: str, raw_path: str) -> GatewayRoute:
    """The pair a call is decided as: the declared action its method and path select, on
    that action's resource. A passthrough provider opened by the operator is decided as its
    whole-provider pair. Raises GatewayRefused."""
    spec = target.spec
    problem = unsafe_path(path)
    if problem is None and any(e in raw_path.lower() for e in ("%2f", "%5c")):
        # The provider would read it as a separator we did not match on.
        problem = "the path holds an encoded '/' or '\\'"
    if problem is not None:
        raise GatewayRefused("ACTION_NOT_DECLARED", f"{problem}, so it matches no action")
    if not spec.scoped:
        if not target.passthrough_open:
            raise GatewayRefused("PASSTHROUGH_NOT_ENABLED")
        return GatewayRoute(
            action_scope(spec.name, PASSTHROUGH_ID), resource_scope(spec.name, PASSTHROUGH_ID)
        )
    action = select_action(spec, method, path)
    if action is None:
        raise GatewayRefused(
            "ACTION_NOT_DECLARED", f"no action of {spec.name!r} is declared for {method} {path}"
        )
    return GatewayRoute(
        action_scope(spec.name, action.action_id), resource_scope(spec.name, action.resource_id)
    )


def outbound_url(target: GatewayTarget, raw_path: str, query: str) -> str:
    """The provider's base URL with the call's path (still percent-encoded as received) and
    query; for `api-key-query`, any parameter of the credential's name the agent sent is
    replaced by the credential."""
    url = target.spec.base_url.rstrip("/") + raw_path
    credential = target.credential_query()
    if credential:
        names = {quote_plus(name) for name in credential}
        kept = [p for p in query.split("&") if p and p.partition("=")[0] not in names]
        query = "&".join([*kept, urlencode(credential)])
    return f"{url}?{query}" if query else url


def outbound_headers(
    target: GatewayTarget, incoming: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The call's headers without hop-by-hop ones, the mandate, Caracal's own or any the
    credential would replace; then the credential by the provider's auth scheme."""
    credential = target.credential_headers()
    replaced = {name.lower() for name in credential} | {"authorization"}
    named = _connection_tokens(incoming)
    kept = [
        (name, value)
        for name, value in incoming
        if (low := name.lower()) not in HOP_BY_HOP
        and low not in named
        and low not in replaced
        and not low.startswith(OWN_PREFIX)
    ]
    return kept + list(credential.items())


def inbound_headers(
    target: GatewayTarget, incoming: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The provider's answer headers without hop-by-hop ones and without any that carries
    the credential (an upstream echoing it must not hand it to the agent)."""
    secrets = [s for s in (target.credential, *target.credential_headers().values()) if s]
    named = _connection_tokens(incoming)
    return [
        (name, value)
        for name, value in incoming
        if (low := name.lower()) not in HOP_BY_HOP
        and low not in named
        and not low.startswith(OWN_PREFIX)
        and not any(secret in value for secret in secrets)
    ]


def refusal_event(
    refused: GatewayRefused,
    provider: str,
    method: str,
    path: str,
    token: str | None,
    *,
    decision_id: str,
    source: str,
    caller: str | None,
    mandate_id: str | None,
    subject_id: str | None,
) -> NewEvent:
    """The ledger event of a call refused before its mandate was decided on (the token
    itself never enters the ledger)."""
    payload: dict[str, Any] = {
        "decision_id": decision_id,
        "source": source,
        "provider": provider[:64],
        "method": method[:16],
        "path": path[:256],
        "caller": caller[:128] if caller else None,
        "reason": refused.reason[:512],
    }
    if token:
        payload["token_sha256"] = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]
    return NewEvent(
        "validation.denied",
        payload,
        principal_id=subject_id,
        mandate_id=mandate_id,
        reason_code=refused.reason_code,
    )


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    names: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            names.update(t.strip().lower() for t in value.split(",") if t.strip())
    return names
