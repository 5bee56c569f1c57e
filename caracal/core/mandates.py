"""Mandate claims: what a token says, parsed strictly, and how a delegated mandate must relate
to its parent. The rules that decide an issuance or a delegation are in `caracal.core.authority`.

Claims version 2 carries the grants: the (resource, action) pairs the mandate allows, as index
pairs into its resource and action lists (`grt`). Scopes are sets; grants are pairs, so a
mandate for resources {repos, admin} and actions {read, delete} allows only the pairs the
catalog declared when it was issued. Version 1 tokens (before grants were signed) still parse,
so their rows and events can be shown and replayed, but validation denies them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from caracal.core.jws import TokenError
from caracal.core.scopes import Grants

CLAIMS_VERSION = 2
LEGACY_CLAIMS_VERSION = 1  # no grants: parsed for display and replay, denied by validation
MAX_CHAIN = 32
_LEGACY_KEYS = frozenset(
    {"v", "jti", "ws", "iss", "sub", "iat", "nbf", "exp", "res", "act", "dep", "par", "ih"}
)
_CLAIM_KEYS = _LEGACY_KEYS | {"grt"}
_EXPECTED_KEYS = {CLAIMS_VERSION: _CLAIM_KEYS, LEGACY_CLAIMS_VERSION: _LEGACY_KEYS}


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
    grants: Grants | None = None  # None only for a version 1 token

    @property
    def legacy(self) -> bool:
        return self.grants is None

    def granted_pairs(self) -> frozenset[tuple[str, str]]:
        """The (resource scope, action scope) pairs this mandate allows."""
        return frozenset((self.resources[i], self.actions[j]) for i, j in (self.grants or ()))

    def allows(self, resource: str, action: str) -> bool:
        """Whether `action` on `resource` is one of the grants (never for a legacy token)."""
        if self.grants is None:
            return False
        try:
            pair = (self.resources.index(resource), self.actions.index(action))
        except ValueError:
            return False
        return pair in self.grants

    def to_claims(self) -> dict[str, Any]:
        claims = {
            "v": LEGACY_CLAIMS_VERSION if self.grants is None else CLAIMS_VERSION,
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
        if self.grants is not None:
            claims["grt"] = [list(pair) for pair in self.grants]
        return claims

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> MandateClaims:
        """Strictly typed claims, or TokenError(TOKEN_MALFORMED)."""
        version = claims.get("v")
        if type(version) is not int or claims.keys() != _EXPECTED_KEYS.get(version):
            raise TokenError("TOKEN_MALFORMED", "the token's claims are not a mandate's")
        if not _well_typed(claims):
            _check_types(claims)  # says which claim is wrong (or accepts a str subclass)
        res, act = claims["res"], claims["act"]
        grants = _grants(claims["grt"], len(res), len(act)) if version == CLAIMS_VERSION else None
        return cls(
            claims["jti"],
            claims["ws"],
            claims["iss"],
            claims["sub"],
            claims["iat"],
            claims["nbf"],
            claims["exp"],
            tuple(res),
            tuple(act),
            claims["dep"],
            claims["par"],
            claims["ih"],
            grants,
        )

    def signable(self) -> MandateClaims:
        """These claims, after checking that validation would read them back the same (so no
        token validation calls malformed is ever signed); TokenError otherwise."""
        if self.grants is None:
            raise TokenError("TOKEN_MALFORMED", "a mandate must name its grants")
        if MandateClaims.from_claims(self.to_claims()) != self:
            raise TokenError("TOKEN_MALFORMED", "the claims do not read back as given")
        return self


def _well_typed(claims: dict[str, Any]) -> bool:
    """True only when `_check_types` would accept `claims`: the same checks in one expression
    for the common case (exact JSON types); anything else goes through `_check_types` for its
    message. Printable ASCII is a property of each character, so it is checked on the ids
    joined."""
    jti, ws, iss, sub, par, ih = (
        claims["jti"],
        claims["ws"],
        claims["iss"],
        claims["sub"],
        claims["par"],
        claims["ih"],
    )
    iat, nbf, exp, dep, res, act = (
        claims["iat"],
        claims["nbf"],
        claims["exp"],
        claims["dep"],
        claims["res"],
        claims["act"],
    )
    if not (
        type(jti) is str
        and type(ws) is str
        and type(iss) is str
        and type(sub) is str
        and jti
        and ws
        and iss
        and sub
        and (par is None or type(par) is str)
        and (ih is None or type(ih) is str)
        and type(iat) is int
        and type(nbf) is int
        and type(exp) is int
        and type(dep) is int
        and iat >= 0
        and nbf >= 0
        and dep >= 0
        and nbf < exp
        and type(res) is list
        and type(act) is list
        and res
        and act
    ):
        return False
    ids = jti + ws + iss + sub + (par or "")
    if not (ids.isascii() and ids.isprintable()):
        return False
    for scopes in (res, act):
        for scope in scopes:
            if type(scope) is not str:
                return False
        if len(set(scopes)) != len(scopes):
            return False
    return True


def _check_types(claims: dict[str, Any]) -> None:
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
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise TokenError("TOKEN_MALFORMED", f"claim {key!r} must be a list of scopes")
        if len(set(value)) != len(value):
            raise TokenError("TOKEN_MALFORMED", f"claim {key!r} lists a scope twice")
    for key in ("par", "ih"):
        if claims[key] is not None and not isinstance(claims[key], str):
            raise TokenError("TOKEN_MALFORMED", f"claim {key!r} must be a string or null")
    if claims["nbf"] >= claims["exp"]:
        raise TokenError("TOKEN_MALFORMED", "the token expires before it starts")


def _well_formed_grants(value: Any, resources: int, actions: int) -> Grants | None:
    """The pairs when `_grants` would accept them as they are (exact JSON types), else None
    for `_grants` to say what is wrong."""
    if type(value) is not list or not value:
        return None
    pairs: list[tuple[int, int]] = []
    last = (-1, -1)
    for pair in value:
        if type(pair) is not list or len(pair) != 2:
            return None
        i, j = pair
        if (
            type(i) is not int
            or type(j) is not int
            or not (0 <= i < resources and 0 <= j < actions)
        ):
            return None
        here = (i, j)
        if here <= last:
            return None
        pairs.append(here)
        last = here
    # Every index is in range: all are used when there are as many distinct ones as scopes.
    if len({i for i, _ in pairs}) != resources or len({j for _, j in pairs}) != actions:
        return None
    return tuple(pairs)


def _grants(value: Any, resources: int, actions: int) -> Grants:
    """`grt`: [[resource index, action index], ...], strictly ascending, every resource and
    every action in at least one pair."""
    fast = _well_formed_grants(value, resources, actions)
    if fast is not None:
        return fast
    if not isinstance(value, list) or not value:
        raise TokenError("TOKEN_MALFORMED", "claim 'grt' must be a list of index pairs")
    pairs: list[tuple[int, int]] = []
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(type(i) is int for i in pair)
            or not (0 <= pair[0] < resources and 0 <= pair[1] < actions)
        ):
            raise TokenError("TOKEN_MALFORMED", "claim 'grt' holds a pair out of range")
        pairs.append((pair[0], pair[1]))
    if any(a >= b for a, b in itertools.pairwise(pairs)):
        raise TokenError("TOKEN_MALFORMED", "claim 'grt' is not in ascending order")
    if {i for i, _ in pairs} != set(range(resources)) or {j for _, j in pairs} != set(
        range(actions)
    ):
        raise TokenError("TOKEN_MALFORMED", "claim 'grt' leaves a scope without a pair")
    return tuple(pairs)


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
    if not child.granted_pairs() <= parent.granted_pairs():
        return "grants exceed the parent's"
    if child.expires_at > parent.expires_at:
        return "expires after the parent"
    if child.depth > parent.depth - 1:
        return "delegation depth exceeds the parent's"
    if parent.intent_hash is not None and child.intent_hash != parent.intent_hash:
        return "drops or changes the parent's intent binding"
    return None
