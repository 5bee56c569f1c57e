"""Mandate claims and the pure rules that bound issuance and delegation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from caracal.core.errors import DeniedError
from caracal.core.jws import TokenError
from caracal.core.principals import may_grant
from caracal.core.scopes import any_pattern_matches

CLAIMS_VERSION = 1
MAX_CHAIN = 32
_CLAIM_KEYS = frozenset(
    {"v", "jti", "ws", "iss", "sub", "iat", "nbf", "exp", "res", "act", "dep", "par", "ih"}
)


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    name: str
    kind: str
    status: str

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    principal_id: str
    max_validity: int
    resources: tuple[str, ...]
    actions: tuple[str, ...]
    delegation_depth: int
    active: bool


@dataclass(frozen=True, slots=True)
class MandateClaims:
    id: str
    workspace_id: str
    issuer_id: str
    subject_id: str
    issued_at: int
    not_before: int
    expires_at: int
    resources: tuple[str, ...]
    actions: tuple[str, ...]
    depth: int
    parent_id: str | None
    intent_hash: str | None

    def to_claims(self) -> dict[str, Any]:
        return {
            "v": CLAIMS_VERSION,
            "jti": self.id,
            "ws": self.workspace_id,
            "iss": self.issuer_id,
            "sub": self.subject_id,
            "iat": self.issued_at,
            "nbf": self.not_before,
            "exp": self.expires_at,
            "res": list(self.resources),
            "act": list(self.actions),
            "dep": self.depth,
            "par": self.parent_id,
            "ih": self.intent_hash,
        }

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> MandateClaims:
        """Strictly typed claims, or TokenError(TOKEN_MALFORMED)."""
        if set(claims) != _CLAIM_KEYS or claims["v"] != CLAIMS_VERSION:
            raise TokenError("TOKEN_MALFORMED", "the token's claims are not a mandate's")
        for key in ("jti", "ws", "iss", "sub"):
            if not isinstance(claims[key], str) or not claims[key]:
                raise TokenError("TOKEN_MALFORMED", f"claim {key!r} must be a non-empty string")
        # Ids are looked up in the store: only printable ASCII (as issued) can be queried safely.
        for key in ("jti", "ws", "iss", "sub", "par"):
            if isinstance(claims[key], str) and not (
                claims[key].isascii() and claims[key].isprintable()
            ):
                raise TokenError("TOKEN_MALFORMED", f"claim {key!r} is not printable ASCII")
        for key in ("iat", "nbf", "exp", "dep"):
            if type(claims[key]) is not int or claims[key] < 0:
                raise TokenError("TOKEN_MALFORMED", f"claim {key!r} must be a non-negative integer")
        for key in ("res", "act"):
            value = claims[key]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                raise TokenError("TOKEN_MALFORMED", f"claim {key!r} must be a list of scopes")
        for key in ("par", "ih"):
            if claims[key] is not None and not isinstance(claims[key], str):
                raise TokenError("TOKEN_MALFORMED", f"claim {key!r} must be a string or null")
        if claims["nbf"] >= claims["exp"]:
            raise TokenError("TOKEN_MALFORMED", "the token expires before it starts")
        return cls(
            id=claims["jti"],
            workspace_id=claims["ws"],
            issuer_id=claims["iss"],
            subject_id=claims["sub"],
            issued_at=claims["iat"],
            not_before=claims["nbf"],
            expires_at=claims["exp"],
            resources=tuple(claims["res"]),
            actions=tuple(claims["act"]),
            depth=claims["dep"],
            parent_id=claims["par"],
            intent_hash=claims["ih"],
        )


def _deny(code: str, message: str) -> DeniedError:
    return DeniedError(message, code)


def check_parties(issuer: Principal, subject: Principal) -> None:
    if not issuer.active:
        raise _deny(
            "ISSUER_INACTIVE",
            f"Issuer {issuer.name} is {issuer.status}; it cannot grant authority.",
        )
    if not subject.active:
        raise _deny(
            "SUBJECT_INACTIVE",
            f"Subject {subject.name} is {subject.status}; it cannot receive authority.",
        )
    if not may_grant(issuer.kind, subject.kind):
        raise _deny(
            "DIRECTION_NOT_ALLOWED",
            f"A {issuer.kind} ({issuer.name}) may not grant authority to a {subject.kind} ({subject.name}).",
        )


def check_policy(
    policy: Policy | None,
    subject: Principal,
    resources: Sequence[str],
    actions: Sequence[str],
    validity: int,
    depth: int,
) -> None:
    """The subject's policy is an upper bound on anything granted to it."""
    if policy is None or not policy.active:
        raise _deny(
            "NO_ACTIVE_POLICY",
            f"{subject.name} has no active policy; create one with `caracal policy create --principal {subject.name}`.",
        )
    if validity > policy.max_validity:
        raise _deny(
            "POLICY_VALIDITY_EXCEEDED",
            f"Requested validity {validity}s exceeds the policy maximum of {policy.max_validity}s ({policy.id}).",
        )
    for scope in resources:
        if not any_pattern_matches(policy.resources, scope):
            raise _deny(
                "POLICY_RESOURCE_EXCEEDED", f"Resource {scope} is outside policy {policy.id}."
            )
    for scope in actions:
        if not any_pattern_matches(policy.actions, scope):
            raise _deny("POLICY_ACTION_EXCEEDED", f"Action {scope} is outside policy {policy.id}.")
    if depth > policy.delegation_depth:
        raise _deny(
            "POLICY_DEPTH_EXCEEDED",
            f"Delegation depth {depth} exceeds the policy maximum of {policy.delegation_depth} ({policy.id}).",
        )


@dataclass(frozen=True, slots=True)
class DelegationPlan:
    not_before: int
    expires_at: int
    depth: int
    capped: bool  # the requested expiry was cut back to the source's


def plan_delegation(
    source: MandateClaims,
    resources: Sequence[str],
    actions: Sequence[str],
    ttl: int,
    depth: int | None,
    now: int,
) -> DelegationPlan:
    """Bounds a delegation from `source` (already checked valid): depth − 1, subset, capped expiry."""
    if source.depth < 1:
        raise _deny(
            "DELEGATION_DEPTH_EXHAUSTED", f"Mandate {source.id} has no delegation depth left."
        )
    child_depth = source.depth - 1 if depth is None else depth
    if child_depth > source.depth - 1:
        raise _deny(
            "DELEGATION_DEPTH_EXHAUSTED",
            f"Delegation depth {child_depth} is more than mandate {source.id} allows ({source.depth - 1}).",
        )
    extra_res = [r for r in resources if r not in source.resources]
    if extra_res:
        raise _deny(
            "SCOPE_NOT_SUBSET", f"Resource {extra_res[0]} is not granted by mandate {source.id}."
        )
    extra_act = [a for a in actions if a not in source.actions]
    if extra_act:
        raise _deny(
            "SCOPE_NOT_SUBSET", f"Action {extra_act[0]} is not granted by mandate {source.id}."
        )
    wanted = now + ttl
    expires = min(wanted, source.expires_at)
    return DelegationPlan(max(now, source.not_before), expires, child_depth, expires < wanted)


def chain_defect(child: MandateClaims, parent: MandateClaims) -> str | None:
    """Why `child` cannot descend from `parent`, or None when the link is sound."""
    if child.parent_id != parent.id:
        return "parent id does not match"
    if child.workspace_id != parent.workspace_id:
        return "parent belongs to another workspace"
    if child.issuer_id != parent.subject_id:
        return "issuer is not the parent's subject"
    if not set(child.resources) <= set(parent.resources) or not set(child.actions) <= set(
        parent.actions
    ):
        return "scopes exceed the parent's"
    if child.expires_at > parent.expires_at:
        return "expires after the parent"
    if child.depth > parent.depth - 1:
        return "delegation depth exceeds the parent's"
    if parent.intent_hash is not None and child.intent_hash != parent.intent_hash:
        return "drops or changes the parent's intent binding"
    return None
