"""Issuing root mandates: the request, the decision within the subject's policy, the signed
and stored mandate (or the recorded refusal), and the ledger event that describes it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core import jws
from caracal.core.authority import MandatePlan, decide_issuance
from caracal.core.canonical import check_intent_size, intent_hash
from caracal.core.durations import parse_duration
from caracal.core.errors import DeniedError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.mandates import MandateClaims
from caracal.services.ids import new_sortable_id
from caracal.services.issuance_parties import IssuanceParties
from caracal.store import ledger_rows, mandate_rows

if TYPE_CHECKING:
    from caracal.services.bulk_issue import LineOutcome
    from caracal.services.facade import Caracal

# The mandate service's one logger name, whichever part of it logs (log filters rely on it).
log = logging.getLogger("caracal.services.mandates")
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
        check_depth(depth)
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


class MandateIssuance:
    """The issuing part of `MandateService`."""

    app: Caracal
    # Both parties, the policy and the signing key, kept by authority version.
    parties: IssuanceParties

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

        return commit_issued(self.app, work)

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
        issued = sign_and_store(
            self.app, conn, plan, issuer.name, now, active=parties.active_key(plan.issuer_id)
        )
        events.append(issued_event("mandate.issued", issued))
        return issued


def sign_and_store(
    app: Caracal,
    conn: Connection,
    plan: MandatePlan,
    signer_name: str,
    now: int,
    *,
    root_id: str | None = None,
    active: tuple[str, str] | None = None,
) -> IssuedMandate:
    """Sign the mandate a decision planned and store its row (issued or delegated alike)."""
    try:
        claims = plan.claims(new_sortable_id("mnd"), app.workspace_id, now)
    except jws.TokenError as exc:  # the decision let something through it must not
        raise ValidationError(
            f"Refusing to sign a mandate validation would call malformed: {exc.message}."
        ) from None
    kid, private = app.signing.signer(conn, plan.issuer_id, signer_name, active)
    token = jws.encode(claims.to_claims(), kid, private)
    root = root_id or claims.id
    mandate_rows.insert(conn, claims, kid, token, root, plan.policy_id)
    return IssuedMandate(claims.id, token, claims, plan.capped, kid, root, plan.policy_id)


def commit_issued(app: Caracal, work: Any) -> IssuedMandate:
    """Run an issuing transaction; a refusal (already recorded by `work`) is raised after it
    commits."""
    outcome = app.store.write(work)
    if isinstance(outcome, DeniedError):
        log.info("refused: %s (%s)", outcome.message, outcome.reason_code)
        raise outcome
    log.info("mandate %s issued to %s", outcome.id, outcome.claims.subject_id)
    return outcome  # type: ignore[no-any-return]


def issued_event(kind: str, issued: IssuedMandate) -> NewEvent:
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


def check_depth(depth: int) -> None:
    if not 0 <= depth <= MAX_DEPTH:
        raise ValidationError(f"Delegation depth must be between 0 and {MAX_DEPTH}.")
