"""Fail-closed mandate validation.

`Validator.validate` returns a Decision; it never raises. Static facts about a token chain
(parsed claims, verified signatures, sound links) are cached by token hash; everything that
can change (revocation, principal and key status, time) is read from the state every time.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core import jws
from caracal.core.canonical import intent_hash
from caracal.core.jws import TokenError
from caracal.core.keys import verify
from caracal.core.mandates import MAX_CHAIN, MandateClaims, chain_defect
from caracal.core.reasons import VALIDATION_DENIALS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason_code: str
    reason: str
    mandate_id: str | None
    subject_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "mandate_id": self.mandate_id,
        }


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    principal_id: str
    public: ec.EllipticCurvePublicKey
    status: str  # active | retired | revoked


@dataclass(frozen=True, slots=True)
class MandateState:
    id: str
    token: str
    revoked: bool


class AuthorityState(Protocol):
    """What validation needs to know right now. Implementations: the store, or a cache kept
    fresh by revocation events."""

    @property
    def workspace_id(self) -> str: ...

    def key(self, kid: str) -> KeyInfo | None: ...

    def mandate(self, mandate_id: str) -> MandateState | None: ...

    def principal_status(self, principal_id: str) -> str | None: ...


class _Denied(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Link:
    claims: MandateClaims
    kid: str
    signing_input: bytes


def _deny(code: str, detail: str = "") -> _Denied:
    return _Denied(code, detail or VALIDATION_DENIALS[code])


@dataclass(frozen=True, slots=True)
class _Chain:
    links: tuple[_Link, ...]  # leaf first; only the sound prefix when `defect` is set
    defect: _Denied | None  # a broken ancestor, reported after the leaf's own checks


class Validator:
    def __init__(self, *, leeway_seconds: int = 30, cache_size: int = 10_000) -> None:
        self.leeway = leeway_seconds
        self.cache_size = cache_size
        self._chains: OrderedDict[bytes, _Chain] = OrderedDict()
        # Verified ancestors, by token hash: siblings under one parent verify it once.
        self._links: OrderedDict[bytes, _Link] = OrderedDict()

    # ---- cache control -------------------------------------------------------------------
    def forget(self, mandate_ids: set[str] | None = None) -> None:
        """Drop cached chains (all, or those touching `mandate_ids`)."""
        if mandate_ids is None:
            self._chains.clear()
            self._links.clear()
            return
        for key, chain in list(self._chains.items()):
            if any(link.claims.id in mandate_ids for link in chain.links):
                del self._chains[key]
        for key, link in list(self._links.items()):
            if link.claims.id in mandate_ids:
                del self._links[key]

    # ---- the decision --------------------------------------------------------------------
    def validate(
        self,
        token: str | None,
        action: str,
        resource: str,
        state: AuthorityState,
        now: float,
        *,
        caller: str | None = None,
        intent: Any = None,
    ) -> Decision:
        """Checks in the documented order; the first failure decides."""
        mandate_id: str | None = None
        subject_id: str | None = None
        try:
            if not token:
                raise _deny("TOKEN_MISSING")
            chain = self._chain(token, state)
            leaf = chain.links[0].claims
            mandate_id, subject_id = leaf.id, leaf.subject_id
            self._check_link(chain.links[0], state, now)
            if caller is not None and caller != leaf.subject_id:
                raise _deny(
                    "CALLER_MISMATCH", f"caller {caller} is not the subject {leaf.subject_id}"
                )
            self._check_ancestors(chain, state, now)
            if action not in leaf.actions:
                raise _deny("ACTION_OUT_OF_SCOPE", f"action {action} is not granted")
            if resource not in leaf.resources:
                raise _deny("RESOURCE_OUT_OF_SCOPE", f"resource {resource} is not granted")
            if not leaf.allows(resource, action):
                # Scopes are sets, grants are pairs: both named, but not together.
                raise _deny(
                    "ACTION_OUT_OF_SCOPE", f"action {action} is not granted on resource {resource}"
                )
            if leaf.intent_hash is not None:
                if intent is None:
                    raise _deny(
                        "INTENT_MISMATCH", "the mandate is bound to an intent; none was given"
                    )
                if intent_hash(intent) != leaf.intent_hash:
                    raise _deny("INTENT_MISMATCH")
        except _Denied as denial:
            return Decision(False, denial.code, denial.detail, mandate_id, subject_id)
        except Exception as exc:  # fail closed: any surprise is a denial
            log.exception("validation failed unexpectedly")
            return Decision(
                False,
                "INTERNAL_ERROR",
                f"validation error: {type(exc).__name__}",
                mandate_id,
                subject_id,
            )
        return Decision(True, "ALLOWED", "allowed", mandate_id, subject_id)

    def check_live(self, token: str, state: AuthorityState, now: float) -> Decision:
        """Is this mandate usable right now (as a delegation source)? No scope checks."""
        mandate_id: str | None = None
        try:
            chain = self._chain(token, state)
            mandate_id = chain.links[0].claims.id
            self._check_link(chain.links[0], state, now)
            self._check_ancestors(chain, state, now)
        except _Denied as denial:
            return Decision(False, denial.code, denial.detail, mandate_id)
        except Exception as exc:
            log.exception("mandate check failed unexpectedly")
            return Decision(
                False, "INTERNAL_ERROR", f"validation error: {type(exc).__name__}", mandate_id
            )
        return Decision(True, "ALLOWED", "usable", mandate_id, chain.links[0].claims.subject_id)

    # ---- static part: parse, verify, link (cached by token hash) -------------------------
    def _chain(self, token: str, state: AuthorityState) -> _Chain:
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._chains.get(key)
        if cached is not None:
            self._chains.move_to_end(key)
            return cached
        links = [self._verified_link(token, state)]
        defect: _Denied | None = None
        seen = {links[0].claims.id}
        while defect is None and links[-1].claims.parent_id is not None:
            parent_id = links[-1].claims.parent_id
            if parent_id in seen or len(links) >= MAX_CHAIN:
                defect = _deny(
                    "DELEGATION_CHAIN_INVALID", "the delegation chain loops or is too long"
                )
                break
            row = state.mandate(parent_id)
            if row is None:
                defect = _deny("DELEGATION_CHAIN_INVALID", f"ancestor {parent_id} is missing")
                break
            try:
                parent = self._ancestor_link(row.token, state)
            except _Denied as denial:
                defect = _deny("DELEGATION_CHAIN_INVALID", f"ancestor {parent_id}: {denial.detail}")
                break
            problem = chain_defect(links[-1].claims, parent.claims)
            if problem:
                defect = _deny(
                    "DELEGATION_CHAIN_INVALID", f"mandate {links[-1].claims.id}: {problem}"
                )
                break
            seen.add(parent_id)
            links.append(parent)
        chain = _Chain(tuple(links), defect)
        if self.cache_size:
            self._chains[key] = chain
            if len(self._chains) > self.cache_size:
                self._chains.popitem(last=False)
        return chain

    def _ancestor_link(self, token: str, state: AuthorityState) -> _Link:
        key = hashlib.sha256(token.encode("ascii", "replace")).digest()
        link = self._links.get(key)
        if link is None:
            link = self._verified_link(token, state)
            if self.cache_size:
                self._links[key] = link
                if len(self._links) > self.cache_size:
                    self._links.popitem(last=False)
        return link

    @staticmethod
    def _verified_link(token: str, state: AuthorityState) -> _Link:
        try:
            parsed = jws.decode(token)
            claims = MandateClaims.from_claims(parsed.claims)
        except TokenError as exc:
            raise _deny(exc.code, exc.message) from None
        if claims.legacy:
            raise _deny(
                "TOKEN_MALFORMED",
                "the mandate was issued before grants were signed as pairs; issue a new one",
            )
        # Until the signature verifies, the claims are only claims: no mandate id is reported.
        if claims.workspace_id != state.workspace_id:
            raise _deny("WORKSPACE_MISMATCH")
        key = state.key(parsed.kid)
        if key is None or key.principal_id != claims.issuer_id:
            raise _deny("KEY_UNKNOWN", f"key {parsed.kid} is not a key of the issuer")
        if not verify(key.public, parsed.signing_input, parsed.signature):
            raise _deny("SIGNATURE_INVALID")
        stored = state.mandate(claims.id)
        # Compare what was signed, never the signature bytes: ECDSA signatures are malleable.
        # (The stored token itself, as an ancestor always is, signed what it signed.)
        if stored is None or (
            stored.token != token
            and stored.token.rsplit(".", 1)[0].encode("ascii") != parsed.signing_input
        ):
            raise _deny("MANDATE_UNKNOWN", f"mandate {claims.id} is not in this workspace")
        return _Link(claims, parsed.kid, parsed.signing_input)

    # ---- dynamic part: keys, revocation, time, principals (never cached) -----------------
    def _check_link(self, link: _Link, state: AuthorityState, now: float) -> None:
        claims = link.claims
        key = state.key(link.kid)
        if key is None or key.status == "revoked":
            raise _deny("KEY_REVOKED", f"signing key {link.kid} was revoked")
        row = state.mandate(claims.id)
        if row is None:
            raise _deny("MANDATE_UNKNOWN", f"mandate {claims.id} is gone")
        if row.revoked:
            raise _deny("MANDATE_REVOKED", f"mandate {claims.id} was revoked")
        if now + self.leeway < claims.not_before:
            raise _deny("MANDATE_NOT_YET_VALID", f"mandate {claims.id} is not valid yet")
        if now - self.leeway >= claims.expires_at:
            raise _deny("MANDATE_EXPIRED", f"mandate {claims.id} has expired")
        if state.principal_status(claims.issuer_id) != "active":
            raise _deny("ISSUER_INACTIVE", f"issuer {claims.issuer_id} is not active")
        if state.principal_status(claims.subject_id) != "active":
            raise _deny("SUBJECT_INACTIVE", f"subject {claims.subject_id} is not active")

    def _check_ancestors(self, chain: _Chain, state: AuthorityState, now: float) -> None:
        for link in chain.links[1:]:
            try:
                self._check_link(link, state, now)
            except _Denied as denial:
                raise _deny(
                    "DELEGATION_CHAIN_INVALID", f"ancestor {link.claims.id}: {denial.detail}"
                ) from None
        if chain.defect is not None:
            raise chain.defect
