"""What a mandate may be delegated to, before anything is asked: the subjects the rules allow
(with the deepest delegation each may receive), the others with the reason they are refused,
or why nothing at all can be delegated from it.

The checks are the ones `decide_delegation` makes on submit (the same core functions), so a
form or a shell offers exactly what the facade would accept; the facade still checks
everything again on delegate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from caracal.core import jws
from caracal.core.authority import check_parties
from caracal.core.durations import format_duration, when
from caracal.core.errors import DeniedError
from caracal.core.mandates import MandateClaims, Principal
from caracal.core.scopes import any_pattern_matches
from caracal.services.authority_state import StoreAuthorityState
from caracal.services.mandate_reads import resolve_mandate_id
from caracal.store import mandate_rows, policy_rows, principal_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


@dataclass(frozen=True)
class SubjectOption:
    id: str
    name: str
    kind: str
    max_depth: int = 0  # the deepest delegation this subject may receive
    max_validity: int = 0  # seconds: the policy's limit, capped at the source's expiry
    reason_code: str | None = None  # None: allowed
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DelegationOptions:
    source_id: str
    problem: str | None = None  # why nothing can be delegated from the source at all
    problem_code: str | None = None
    allowed: list[SubjectOption] = field(default_factory=list)
    refused: list[SubjectOption] = field(default_factory=list)
    source_depth: int = 0  # the source's delegation depth; a child gets at most one less

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "problem": self.problem,
            "problem_code": self.problem_code,
            "allowed": [s.to_dict() for s in self.allowed],
            "refused": [s.to_dict() for s in self.refused],
            "source_depth": self.source_depth,
        }


def delegation_options(app: Caracal, source_id: str) -> DelegationOptions:
    now = int(app.clock())
    with app.store.read() as conn:
        ident = resolve_mandate_id(conn, source_id)
        row = mandate_rows.get(conn, ident)
        assert row is not None
        problem = _source_problem(app, conn, row, now)
        if problem is not None:
            return DelegationOptions(ident, problem[1], problem[0])
        source = MandateClaims.from_claims(jws.decode(row["token"]).claims)
        delegator = principal_rows.get(conn, source.subject_id)
        assert delegator is not None
        allowed: list[SubjectOption] = []
        refused: list[SubjectOption] = []
        for data in principal_rows.all_rows(conn):
            target = Principal(data["id"], data["name"], data["kind"], data["status"])  # type: ignore[arg-type]
            if target.id == delegator.id:
                continue  # it holds the source already
            option = _option(conn, source, delegator, target, now)
            (refused if option.reason_code else allowed).append(option)
    return DelegationOptions(ident, allowed=allowed, refused=refused, source_depth=source.depth)


def _source_problem(
    app: Caracal, conn: Any, row: dict[str, Any], now: int
) -> tuple[str, str] | None:
    """(code, message) when nothing can be delegated from the mandate."""
    ident = row["id"]
    if row.get("revoked_at") is not None:
        why = f" ({row['revoked_reason']})" if row.get("revoked_reason") else ""
        return (
            "SOURCE_INVALID",
            f"Mandate {ident} was revoked on {when(row['revoked_at'])}{why}; "
            "nothing can be delegated from it. Choose an active mandate.",
        )
    if row["expires_at"] <= now:
        return (
            "SOURCE_EXPIRED",
            f"Mandate {ident} expired {format_duration(now - row['expires_at'])} ago; nothing "
            "can be delegated from it. Issue a new mandate instead.",
        )
    state = StoreAuthorityState(conn, app.workspace_id, app.signing)
    live = app.validator.check_live(row["token"], state, now)
    if not live.allowed and live.reason_code != "MANDATE_NOT_YET_VALID":
        return (
            "SOURCE_INVALID",
            f"Mandate {ident} cannot be delegated: {live.reason} ({live.reason_code}).",
        )
    if row["depth"] < 1:
        return (
            "DELEGATION_DEPTH_EXHAUSTED",
            f"Mandate {ident} has no delegation depth left (it was issued with depth 0), so "
            "it cannot be delegated. Issue a mandate with a delegation depth instead.",
        )
    return None


def _option(
    conn: Any, source: MandateClaims, delegator: Principal, target: Principal, now: int
) -> SubjectOption:
    base: dict[str, Any] = {"id": target.id, "name": target.name, "kind": target.kind}
    try:
        check_parties(delegator, target)
    except DeniedError as refusal:
        return SubjectOption(**base, reason_code=refusal.reason_code, reason=refusal.message)
    policy = policy_rows.active_for(conn, target.id)
    if policy is None or not policy.active:
        return SubjectOption(
            **base,
            reason_code="NO_ACTIVE_POLICY",
            reason=f"{target.name} has no active policy; create one for it first.",
        )
    if not any(any_pattern_matches(policy.resources, s) for s in source.resources) or not any(
        any_pattern_matches(policy.actions, s) for s in source.actions
    ):
        return SubjectOption(
            **base,
            reason_code="POLICY_RESOURCE_EXCEEDED",
            reason=f"{target.name}'s policy allows none of this mandate's scopes.",
        )
    return SubjectOption(
        **base,
        max_depth=max(0, min(source.depth - 1, policy.delegation_depth)),
        max_validity=max(0, min(policy.max_validity, source.expires_at - now)),
    )
