"""Mandates: issue, delegate, revoke (with every descendant), inspect."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core import jws
from caracal.core.canonical import intent_hash
from caracal.core.durations import parse_duration
from caracal.core.errors import DeniedError, NotFoundError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.mandates import MandateClaims, check_parties, check_policy, plan_delegation
from caracal.core.scopes import any_pattern_matches
from caracal.services import change_feed
from caracal.services.authority_state import StoreAuthorityState
from caracal.services.ids import new_sortable_id
from caracal.services.principals import resolve
from caracal.store import ledger_rows, mandate_rows, policy_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
MAX_DEPTH = 16


@dataclass(frozen=True)
class IssuedMandate:
    id: str
    token: str
    claims: MandateClaims
    capped: bool = False
    kid: str = ""
    root_id: str = ""
    policy_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        c = self.claims
        return {
            "id": self.id,
            "token": self.token,
            "issuer_id": c.issuer_id,
            "subject_id": c.subject_id,
            "parent_id": c.parent_id,
            "not_before": c.not_before,
            "expires_at": c.expires_at,
            "resources": list(c.resources),
            "actions": list(c.actions),
            "delegation_depth": c.depth,
            "intent_hash": c.intent_hash,
            "expiry_capped": self.capped,
        }


@dataclass(frozen=True)
class Revocation:
    mandate_id: str
    revoked: list[str]  # newly revoked, the mandate itself first
    already: list[str]  # were revoked before

    def to_dict(self) -> dict[str, Any]:
        return {
            "mandate_id": self.mandate_id,
            "revoked": self.revoked,
            "already_revoked": self.already,
        }


class MandateService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    # ---- issuing --------------------------------------------------------------------------
    def issue(
        self,
        issuer_ref: str,
        subject_ref: str,
        resources: Sequence[str],
        actions: Sequence[str],
        ttl: str | int,
        *,
        delegation_depth: int = 0,
        intent: Any = None,
        starts_in: str | int | None = None,
    ) -> IssuedMandate:
        """Sign a root mandate within the subject's policy; a refusal is recorded, then raised."""
        ttl_s = parse_duration(ttl)
        delay = parse_duration(starts_in) if starts_in not in (None, 0, "0") else 0
        _check_depth(delegation_depth)

        def work(conn: Connection) -> IssuedMandate | DeniedError:
            catalog = self.app.providers.catalog(conn)
            res = catalog.require_scopes(resources, "resource")
            act = catalog.require_scopes(actions, "action")
            issuer = resolve(conn, issuer_ref)
            subject = resolve(conn, subject_ref)
            now = int(self.app.clock())
            policy = policy_rows.active_for(conn, subject.id)
            try:
                check_parties(issuer, subject)
                check_policy(policy, subject, res, act, delay + ttl_s, delegation_depth)
            except DeniedError as refusal:
                self.app.ledger.record(
                    conn,
                    NewEvent(
                        "mandate.issue_refused",
                        {
                            "issuer_id": issuer.id,
                            "resources": res,
                            "actions": act,
                            "ttl": ttl_s,
                            "delegation_depth": delegation_depth,
                            "reason": refusal.message,
                        },
                        principal_id=subject.id,
                        reason_code=refusal.reason_code,
                    ),
                )
                return refusal
            claims = MandateClaims(
                id=new_sortable_id("mnd"),
                workspace_id=self.app.workspace_id,
                issuer_id=issuer.id,
                subject_id=subject.id,
                issued_at=now,
                not_before=now + delay,
                expires_at=now + delay + ttl_s,
                resources=tuple(res),
                actions=tuple(act),
                depth=delegation_depth,
                parent_id=None,
                intent_hash=intent_hash(intent) if intent is not None else None,
            )
            issued = self._sign_and_store(
                conn, claims, issuer.id, issuer.name, policy.id if policy else None
            )
            self.app.ledger.record(conn, _issued_event("mandate.issued", issued))
            return issued

        return self._commit(work)

    def delegate(
        self,
        source_id: str,
        subject_ref: str,
        resources: Sequence[str],
        actions: Sequence[str],
        ttl: str | int,
        *,
        delegation_depth: int | None = None,
        intent: Any = None,
    ) -> IssuedMandate:
        """A narrower mandate from `source`, signed by its subject, for another principal."""
        ttl_s = parse_duration(ttl)
        if delegation_depth is not None:
            _check_depth(delegation_depth)

        def work(conn: Connection) -> IssuedMandate | DeniedError:
            ledger_rows.lock_head(conn)  # serialised with any revocation of the source
            source_row = mandate_rows.get(conn, self._resolve_id(conn, source_id))
            assert source_row is not None
            catalog = self.app.providers.catalog(conn)
            res = catalog.require_scopes(resources, "resource")
            act = catalog.require_scopes(actions, "action")
            target = resolve(conn, subject_ref)
            now = int(self.app.clock())
            source = MandateClaims.from_claims(jws.decode(source_row["token"]).claims)
            delegator = resolve(conn, source.subject_id)
            child_intent = intent_hash(intent) if intent is not None else source.intent_hash
            target_policy = policy_rows.active_for(conn, target.id)
            try:
                state = StoreAuthorityState(conn, self.app.workspace_id, self.app.signing)
                live = self.app.validator.check_live(source_row["token"], state, now)
                if not live.allowed:
                    raise DeniedError(
                        f"Mandate {source.id} cannot be delegated: {live.reason} ({live.reason_code}).",
                        "SOURCE_INVALID",
                    )
                check_parties(delegator, target)
                if source.intent_hash is not None and child_intent != source.intent_hash:
                    raise DeniedError(
                        f"Mandate {source.id} is bound to an intent; a delegation must keep it.",
                        "SCOPE_NOT_SUBSET",
                    )
                plan = plan_delegation(source, res, act, ttl_s, delegation_depth, now)
                if target_policy is not None:
                    check_policy(target_policy, target, res, act, plan.expires_at - now, plan.depth)
            except DeniedError as refusal:
                self.app.ledger.record(
                    conn,
                    NewEvent(
                        "mandate.delegation_refused",
                        {
                            "source_id": source.id,
                            "delegator_id": delegator.id,
                            "resources": res,
                            "actions": act,
                            "ttl": ttl_s,
                            "reason": refusal.message,
                        },
                        principal_id=target.id,
                        mandate_id=source.id,
                        reason_code=refusal.reason_code,
                    ),
                )
                return refusal
            claims = MandateClaims(
                id=new_sortable_id("mnd"),
                workspace_id=self.app.workspace_id,
                issuer_id=delegator.id,
                subject_id=target.id,
                issued_at=now,
                not_before=plan.not_before,
                expires_at=plan.expires_at,
                resources=tuple(res),
                actions=tuple(act),
                depth=plan.depth,
                parent_id=source.id,
                intent_hash=child_intent,
            )
            issued = self._sign_and_store(
                conn,
                claims,
                delegator.id,
                delegator.name,
                target_policy.id if target_policy else None,
                root_id=source_row["root_id"],
                capped=plan.capped,
            )
            self.app.ledger.record(conn, _issued_event("mandate.delegated", issued))
            return issued

        return self._commit(work)

    def _sign_and_store(
        self,
        conn: Connection,
        claims: MandateClaims,
        signer_id: str,
        signer_name: str,
        policy_id: str | None,
        *,
        root_id: str | None = None,
        capped: bool = False,
    ) -> IssuedMandate:
        kid, private = self.app.signing.signer(conn, signer_id, signer_name)
        token = jws.encode(claims.to_claims(), kid, private)
        mandate_rows.insert(conn, claims, kid, token, root_id or claims.id, policy_id)
        return IssuedMandate(claims.id, token, claims, capped, kid, root_id or claims.id, policy_id)

    def _commit(self, work: Any) -> IssuedMandate:
        outcome = self.app.store.write(work)
        if isinstance(outcome, DeniedError):
            log.info("refused: %s (%s)", outcome.message, outcome.reason_code)
            raise outcome
        log.info("mandate %s issued to %s", outcome.id, outcome.claims.subject_id)
        return outcome  # type: ignore[no-any-return]

    # ---- revoking -------------------------------------------------------------------------
    def preview_revocation(self, mandate_id: str) -> list[dict[str, Any]]:
        """The mandate and every descendant that a revocation would reach."""
        with self.app.store.read() as conn:
            return mandate_rows.subtree(conn, self._resolve_id(conn, mandate_id))

    def revoke(self, mandate_id: str, reason: str | None = None) -> Revocation:
        def work(conn: Connection) -> Revocation:
            ledger_rows.lock_head(conn)  # no delegation below the mandate commits unseen
            tree = mandate_rows.subtree(conn, self._resolve_id(conn, mandate_id))
            fresh = [r["id"] for r in tree if r["revoked_at"] is None]
            already = [r["id"] for r in tree if r["revoked_at"] is not None]
            root = tree[0]["id"]
            mandate_rows.mark_revoked(conn, fresh, reason)
            self.app.ledger.record(
                conn,
                *(
                    NewEvent(
                        "mandate.revoked",
                        {
                            "reason": reason,
                            "cascade_from": None if r["id"] == root else root,
                            "level": r["level"],
                        },
                        principal_id=r["subject_id"],
                        mandate_id=r["id"],
                    )
                    for r in tree
                    if r["revoked_at"] is None
                ),
            )
            return Revocation(root, fresh, already)

        result = self.app.store.write(work)
        self.app.validator.forget(set(result.revoked))
        change_feed.publish(self.app, "mandate.revoked", result.revoked)
        log.info("mandate %s revoked (%d mandates)", result.mandate_id, len(result.revoked))
        return result

    # ---- reading --------------------------------------------------------------------------
    def _resolve_id(self, conn: Connection, ref: str) -> str:
        """An id, or an unambiguous prefix of one (at least 8 characters)."""
        if mandate_rows.state(conn, ref) is not None:
            return ref
        if len(ref) >= 8:
            found = mandate_rows.find_by_prefix(conn, ref)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ValidationError(f"Mandate id prefix {ref!r} is ambiguous; give more of it.")
        raise NotFoundError(f"Mandate {ref!r} does not exist; see `caracal mandate list`.")

    def get(self, mandate_id: str) -> dict[str, Any]:
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            row = mandate_rows.get(conn, self._resolve_id(conn, mandate_id))
        assert row is not None
        row["status"] = status_of(row, now)
        return row

    def listing(
        self,
        *,
        subject_ref: str | None = None,
        status: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        if status not in (None, "active", "expired", "revoked"):
            raise ValidationError(
                f"Unknown status filter {status!r}: use active, expired or revoked."
            )
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            subject_id = resolve(conn, subject_ref).id if subject_ref else None
            rows = mandate_rows.listing(
                conn,
                subject_id=subject_id,
                status=status,
                now=now,
                search=search,
                limit=limit,
                offset=offset,
            )
        for row in rows:
            row["status"] = status_of(row, now)
        return rows

    def count(
        self,
        *,
        subject_ref: str | None = None,
        status: str | None = None,
        search: str | None = None,
    ) -> int:
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            subject_id = resolve(conn, subject_ref).id if subject_ref else None
            return mandate_rows.count(
                conn, status=status, now=now, subject_id=subject_id, search=search
            )

    def issue_bounds(self, subject_ref: str) -> dict[str, Any]:
        """What may be issued to a subject: its active policy and the catalog scopes inside it
        (what an issue form offers; the facade still checks everything on issue)."""
        with self.app.store.read() as conn:
            subject = resolve(conn, subject_ref)
            policy = policy_rows.active_for(conn, subject.id)
            catalog = self.app.providers.catalog(conn)
        scopes = [s for s in catalog.scopes() if "*" not in s]
        if policy is None:
            return {"subject": subject, "policy": None, "resources": [], "actions": []}
        return {
            "subject": subject,
            "policy": policy,
            "resources": [
                s for s in scopes if ":resource:" in s and any_pattern_matches(policy.resources, s)
            ],
            "actions": [
                s for s in scopes if ":action:" in s and any_pattern_matches(policy.actions, s)
            ],
        }

    def graph(self, mandate_id: str) -> dict[str, Any]:
        """Ancestors (root first) and the subtree below the mandate, each with its status."""
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            ident = self._resolve_id(conn, mandate_id)
            ancestors = list(reversed(mandate_rows.ancestors(conn, ident)))
            subtree = mandate_rows.subtree(conn, ident)
        for row in ancestors + subtree:
            row["status"] = status_of(row, now)
        return {"ancestors": ancestors, "mandate": subtree[0], "descendants": _nest(subtree)}


def status_of(row: dict[str, Any], now: int) -> str:
    if row.get("revoked_at") is not None:
        return "revoked"
    if row["expires_at"] <= now:
        return "expired"
    if row.get("not_before", 0) > now:
        return "pending"
    return "active"


def _nest(subtree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    children: dict[str, list[dict[str, Any]]] = {}
    for row in subtree[1:]:
        children.setdefault(row["parent_id"], []).append(row)

    def build(node_id: str) -> list[dict[str, Any]]:
        return [{**row, "children": build(row["id"])} for row in children.get(node_id, [])]

    return build(subtree[0]["id"])


def _issued_event(kind: str, issued: IssuedMandate) -> NewEvent:
    """Everything the mandate's row holds, but the token itself (a bearer credential): its
    hash instead, so the row can be checked against the event."""
    claims = issued.claims
    return NewEvent(
        kind,
        {
            "issuer_id": claims.issuer_id,
            "parent_id": claims.parent_id,
            "root_id": issued.root_id,
            "resources": list(claims.resources),
            "actions": list(claims.actions),
            "issued_at": claims.issued_at,
            "not_before": claims.not_before,
            "expires_at": claims.expires_at,
            "delegation_depth": claims.depth,
            "intent_bound": claims.intent_hash is not None,
            "intent_hash": claims.intent_hash,
            "kid": issued.kid,
            "policy_id": issued.policy_id,
            "token_sha256": jws.token_sha256(issued.token),
        },
        principal_id=claims.subject_id,
        mandate_id=claims.id,
    )


def _check_depth(depth: int) -> None:
    if not 0 <= depth <= MAX_DEPTH:
        raise ValidationError(f"Delegation depth must be between 0 and {MAX_DEPTH}.")
