"""Mandates: issue, delegate, revoke (with every descendant), inspect."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core import jws
from caracal.core.authority import MandatePlan, SourceState, decide_delegation, decide_issuance
from caracal.core.canonical import check_intent_size, intent_hash
from caracal.core.durations import parse_duration
from caracal.core.errors import DeniedError, NotFoundError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.mandates import MandateClaims
from caracal.core.scopes import any_pattern_matches, scope_kind
from caracal.services import change_feed
from caracal.services.authority_state import StoreAuthorityState
from caracal.services.ids import new_sortable_id
from caracal.services.issuance_parties import IssuanceParties
from caracal.services.principals import resolve
from caracal.store import ledger_rows, mandate_rows, policy_rows

if TYPE_CHECKING:
    from caracal.services.bulk_issue import LineOutcome
    from caracal.services.delegation_options import DelegationOptions
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
            "grants": [list(pair) for pair in sorted(c.granted_pairs())],
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


@dataclass(frozen=True)
class IssueRequest:
    """One root issuance, its durations parsed and its depth checked."""

    issuer: str
    subject: str
    resources: tuple[str, ...]
    actions: tuple[str, ...]
    ttl_s: int
    delay_s: int = 0
    depth: int = 0
    intent: Any = None

    @classmethod
    def of(
        cls,
        issuer: str,
        subject: str,
        resources: Sequence[str],
        actions: Sequence[str],
        ttl: str | int,
        depth: int = 0,
        intent: Any = None,
        starts_in: str | int | None = None,
    ) -> IssueRequest:
        delay = parse_duration(starts_in) if starts_in not in (None, 0, "0") else 0
        _check_depth(depth)
        if intent is not None:
            check_intent_size(intent)
        return cls(
            issuer,
            subject,
            tuple(resources),
            tuple(actions),
            parse_duration(ttl),
            delay,
            depth,
            intent,
        )


class MandateService:
    def __init__(self, app: Caracal) -> None:
        self.app = app
        # Both parties, the policy and the signing key, kept by authority version.
        self.parties = IssuanceParties()

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
        request = IssueRequest.of(
            issuer_ref, subject_ref, resources, actions, ttl, delegation_depth, intent, starts_in
        )

        def work(conn: Connection) -> IssuedMandate | DeniedError:
            # Serialised with suspension and key revocation (which take it too): the issuer's
            # status and key are read after any such change commits, never just before it.
            # (`lock_head`, keeping the row it read: nothing below appends before `record`.)
            head = ledger_rows.read_head(conn, lock=True)
            events: list[NewEvent] = []
            outcome = self.issue_in(conn, request, events)
            self.app.ledger.record(conn, *events, locked=head)
            return outcome

        return self._commit(work)

    def issue_many(self, lines: Iterable[str]) -> Iterator[LineOutcome]:
        """One root mandate per JSON line, each line's outcome in order (see bulk_issue)."""
        from caracal.services.bulk_issue import issue_many, read_requests

        return issue_many(self.app, read_requests(lines))

    def issue_in(
        self, conn: Connection, request: IssueRequest, events: list[NewEvent]
    ) -> IssuedMandate | DeniedError:
        """One issuance inside the caller's transaction: the mandate signed and stored, or the
        refusal; its ledger event is appended to `events` for the caller to record. Invalid
        input raises before anything is written."""
        parties = self.parties.read(conn)
        catalog = self.app.providers.catalog(conn, parties.catalog_version)
        res = catalog.require_scopes(request.resources, "resource")
        act = catalog.require_scopes(request.actions, "action")
        issuer = parties.principal(request.issuer)
        subject = parties.principal(request.subject)
        now = int(self.app.clock())
        try:
            plan = decide_issuance(
                issuer=issuer,
                subject=subject,
                policy=parties.policy(subject.id),
                catalog=catalog,
                resources=res,
                actions=act,
                ttl=request.ttl_s,
                delay=request.delay_s,
                depth=request.depth,
                intent_hash=intent_hash(request.intent) if request.intent is not None else None,
                now=now,
            )
        except DeniedError as refusal:
            events.append(
                NewEvent(
                    "mandate.issue_refused",
                    {
                        "issuer_id": issuer.id,
                        "resources": res,
                        "actions": act,
                        "ttl": request.ttl_s,
                        "delegation_depth": request.depth,
                        "reason": refusal.message,
                    },
                    principal_id=subject.id,
                    reason_code=refusal.reason_code,
                )
            )
            return refusal
        issued = self._sign_and_store(
            conn, plan, issuer.name, now, active=parties.active_key(plan.issuer_id)
        )
        events.append(_issued_event("mandate.issued", issued))
        return issued

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
        if intent is not None:
            check_intent_size(intent)

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
            state = StoreAuthorityState(conn, self.app.workspace_id, self.app.signing)
            live = self.app.validator.check_live(source_row["token"], state, now)
            try:
                plan = decide_delegation(
                    source=source,
                    source_state=SourceState(live.allowed, live.reason_code, live.reason),
                    delegator=delegator,
                    target=target,
                    target_policy=policy_rows.active_for(conn, target.id),
                    catalog=catalog,
                    resources=res,
                    actions=act,
                    ttl=ttl_s,
                    depth=delegation_depth,
                    intent_hash=intent_hash(intent) if intent is not None else None,
                    now=now,
                )
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
            issued = self._sign_and_store(
                conn, plan, delegator.name, now, root_id=source_row["root_id"]
            )
            self.app.ledger.record(conn, _issued_event("mandate.delegated", issued))
            return issued

        return self._commit(work)

    def delegation_options(self, source_id: str) -> DelegationOptions:
        """Who the rules let receive a delegation from `source_id` (and how deep), who not and
        why, or why nothing can be delegated from it (see delegation_options)."""
        from caracal.services.delegation_options import delegation_options

        return delegation_options(self.app, source_id)

    def _sign_and_store(
        self,
        conn: Connection,
        plan: MandatePlan,
        signer_name: str,
        now: int,
        *,
        root_id: str | None = None,
        active: tuple[str, str] | None = None,
    ) -> IssuedMandate:
        try:
            claims = plan.claims(new_sortable_id("mnd"), self.app.workspace_id, now)
        except jws.TokenError as exc:  # the decision let something through it must not
            raise ValidationError(
                f"Refusing to sign a mandate validation would call malformed: {exc.message}."
            ) from None
        kid, private = self.app.signing.signer(conn, plan.issuer_id, signer_name, active)
        token = jws.encode(claims.to_claims(), kid, private)
        root = root_id or claims.id
        mandate_rows.insert(conn, claims, kid, token, root, plan.policy_id)
        return IssuedMandate(claims.id, token, claims, plan.capped, kid, root, plan.policy_id)

    def _commit(self, work: Any) -> IssuedMandate:
        outcome = self.app.store.write(work)
        if isinstance(outcome, DeniedError):
            log.info("refused: %s (%s)", outcome.message, outcome.reason_code)
            raise outcome
        log.info("mandate %s issued to %s", outcome.id, outcome.claims.subject_id)
        return outcome  # type: ignore[no-any-return]

    # ---- revoking -------------------------------------------------------------------------
    def nothing_to_revoke(self, preview: list[dict[str, Any]]) -> str | None:
        """Why revoking would change nothing: when it was revoked, by whom and why (None when
        something would be revoked)."""
        if not preview or any(row["revoked_at"] is None for row in preview):
            return None
        from caracal.core.durations import when
        from caracal.services.ledger_reads import LedgerFilter

        first = preview[0]
        found = self.app.ledger.events(
            LedgerFilter(types=["mandate.revoked"], mandate_id=first["id"]), limit=1
        )
        by = f" by {found[0]['actor']}" if found and found[0].get("actor") else ""
        why = f" ({first['revoked_reason']})" if first.get("revoked_reason") else ""
        return (
            f"Mandate {first['id']} is already revoked: since {when(first['revoked_at'])}{by}"
            f"{why}. Everything delegated from it is revoked too; there is nothing left to revoke."
        )

    def preview_revocation(self, mandate_id: str) -> list[dict[str, Any]]:
        """The mandate and every descendant that a revocation would reach."""
        with self.app.store.read() as conn:
            return mandate_rows.subtree(conn, self._resolve_id(conn, mandate_id))

    def revoke(self, mandate_id: str, reason: str | None = None) -> Revocation:
        def work(conn: Connection) -> Revocation:
            ledger_rows.lock_head(conn)  # no delegation below the mandate commits unseen
            return self.revoke_in(conn, self._resolve_id(conn, mandate_id), reason)

        result = self.app.store.write(work)
        self.announce_revoked(result.revoked)
        log.info("mandate %s revoked (%d mandates)", result.mandate_id, len(result.revoked))
        return result

    def revoke_in(self, conn: Connection, mandate_id: str, reason: str | None) -> Revocation:
        """Revoke a mandate and every descendant inside the caller's transaction (which holds
        the ledger head lock); call `announce_revoked` after it commits."""
        tree = mandate_rows.subtree(conn, mandate_id)
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

    def announce_revoked(self, revoked: list[str]) -> None:
        self.app.validator.forget(set(revoked))
        change_feed.publish(self.app, "mandate.revoked", revoked)

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

    def write_token(self, mandate_id: str) -> Path:
        """Write a mandate's token to `<workspace>/tokens/<id>.jwt`, readable only by its owner
        (0600, written atomically): for terminals that do not pass a copy to the clipboard."""
        from caracal.home.atomic import atomic_write_text

        row = self.get(mandate_id)
        path = self.app.paths.root / "tokens" / f"{row['id']}.jwt"
        atomic_write_text(path, row["token"] + "\n", mode=0o600)
        return path

    def get(self, mandate_id: str) -> dict[str, Any]:
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            row = mandate_rows.get(conn, self._resolve_id(conn, mandate_id))
            assert row is not None
            row["status"] = status_of(row, now)
            row["status_reason"] = None
            if row["status"] in ("active", "pending"):
                # The very checks validation makes (keys, principals, every ancestor).
                state = StoreAuthorityState(conn, self.app.workspace_id, self.app.signing)
                live = self.app.validator.check_live(row["token"], state, now)
                if not live.allowed and live.reason_code not in _TIME_CODES:
                    row["status"], row["status_reason"] = "blocked", live.reason_code
        try:
            claims = MandateClaims.from_claims(jws.decode(row["token"]).claims)
            row["grants"] = [list(pair) for pair in sorted(claims.granted_pairs())]
        except jws.TokenError:
            row["grants"] = []
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
        if status is not None and status not in STATUSES:
            raise ValidationError(
                f"Unknown status filter {status!r}: use one of {', '.join(STATUSES)}."
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

    def prepare_search(self) -> None:
        """Read what a search matches against ahead of the first keystroke (see
        store.mandate_search); later searches read only what is new."""
        from caracal.store import mandate_search

        with self.app.store.read() as conn:
            mandate_search.scope_lists(conn)

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
            return {
                "subject": subject,
                "policy": None,
                "resources": [],
                "actions": [],
                "pairs": [],
            }
        resources = [
            s
            for s in scopes
            if scope_kind(s) == "resource" and any_pattern_matches(policy.resources, s)
        ]
        actions = [
            s
            for s in scopes
            if scope_kind(s) == "action" and any_pattern_matches(policy.actions, s)
        ]
        return {
            "subject": subject,
            "policy": policy,
            "resources": resources,
            "actions": actions,
            # The declared pairs inside the policy (grants are pairs, not the cross product).
            "pairs": [p for p in catalog.pairs() if p[0] in resources and p[1] in actions],
        }

    def graph(self, mandate_id: str) -> dict[str, Any]:
        """Ancestors (root first) and the subtree below the mandate, each with its status."""
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            ident = self._resolve_id(conn, mandate_id)
            ancestors = list(reversed(mandate_rows.ancestors(conn, ident)))
            subtree = mandate_rows.subtree(conn, ident)
            blocked = mandate_rows.blocked_among(conn, [r["id"] for r in ancestors + subtree], now)
        for row in ancestors + subtree:
            row["blocked"] = row["id"] in blocked
            row["status"] = status_of(row, now)
        return {"ancestors": ancestors, "mandate": subtree[0], "descendants": _nest(subtree)}


# Decided by time alone: status_of says so already (without the clock leeway).
_TIME_CODES = frozenset({"MANDATE_EXPIRED", "MANDATE_NOT_YET_VALID"})
STATUSES = ("active", "pending", "blocked", "expired", "revoked")


def status_of(row: dict[str, Any], now: int) -> str:
    """revoked, expired, blocked (validation denies it: a revoked signing key, a principal
    that is not active, or such an ancestor), pending (not valid yet) or active."""
    if row.get("revoked_at") is not None:
        return "revoked"
    if row["expires_at"] <= now:
        return "expired"
    if row.get("blocked"):
        return "blocked"
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
            "grants": [list(pair) for pair in sorted(claims.granted_pairs())],
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
