"""Policies: the upper bound of what a principal may be granted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.durations import parse_duration
from caracal.core.errors import ConflictError, NotFoundError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.mandates import Policy, Principal
from caracal.services.ids import new_id
from caracal.services.principals import resolve
from caracal.store import ledger_rows, mandate_rows, policy_rows, principal_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
MAX_DEPTH = 16


@dataclass(frozen=True)
class DeactivationImpact:
    """What deactivating a policy leaves behind: its principal then has no active policy, so
    nothing more can be issued or delegated to it, but the mandates it holds keep validating
    until they expire or are revoked."""

    policy: Policy
    principal: Principal
    live_mandates: list[str]  # held by the principal, valid now or later

    @property
    def needs_warning(self) -> bool:
        return self.policy.active and bool(self.live_mandates)


@dataclass(frozen=True)
class Deactivation:
    policy: Policy
    revoked: list[str]  # every mandate revoked with it (held ones and their descendants)


class PolicyService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    def create(
        self,
        principal_ref: str,
        max_validity: str | int,
        resources: Sequence[str],
        actions: Sequence[str],
        delegation_depth: int = 0,
        *,
        replace: bool = False,
    ) -> Policy:
        validity = parse_duration(max_validity)
        if not 0 <= delegation_depth <= MAX_DEPTH:
            raise ValidationError(f"Delegation depth must be between 0 and {MAX_DEPTH}.")
        policy = self.app.store.write(
            lambda conn: self.create_in(
                conn, principal_ref, validity, resources, actions, delegation_depth, replace=replace
            )
        )
        log.info("policy %s created for %s", policy.id, policy.principal_id)
        return policy

    def create_in(
        self,
        conn: Connection,
        principal_ref: str,
        validity: int,
        resources: Sequence[str],
        actions: Sequence[str],
        delegation_depth: int,
        *,
        replace: bool,
    ) -> Policy:
        """Create a policy in the caller's transaction (`validity` in seconds)."""
        policy_id = new_id("pol")
        principal = resolve(conn, principal_ref)
        if principal.status == "revoked":
            raise ConflictError(f"{principal.name} is revoked; it cannot get a policy.")
        catalog = self.app.providers.catalog(conn)
        res = catalog.require_patterns(resources, "resource")
        act = catalog.require_patterns(actions, "action")
        catalog.require_pattern_pairs(res, act)
        current = policy_rows.active_for(conn, principal.id)
        if current is not None:
            if not replace:
                raise ConflictError(
                    f"{principal.name} already has active policy {current.id}; pass --replace "
                    "to supersede it, or deactivate it first."
                )
            policy_rows.deactivate(conn, current.id)
            self.app.ledger.record(
                conn,
                NewEvent(
                    "policy.deactivated",
                    {"policy_id": current.id, "superseded_by": policy_id},
                    principal_id=principal.id,
                ),
            )
        policy = Policy(
            policy_id, principal.id, validity, tuple(res), tuple(act), delegation_depth, True
        )
        policy_rows.insert(conn, policy)
        self.app.ledger.record(
            conn,
            NewEvent(
                "policy.created",
                {
                    "policy_id": policy.id,
                    "max_validity": validity,
                    "resources": res,
                    "actions": act,
                    "delegation_depth": delegation_depth,
                    "replaced": current.id if current else None,
                },
                principal_id=principal.id,
            ),
        )
        return policy

    def all(self, principal_ref: str | None = None) -> list[dict[str, Any]]:
        with self.app.store.read() as conn:
            principal_id = resolve(conn, principal_ref).id if principal_ref else None
            return policy_rows.rows(conn, principal_id)

    def get(self, policy_id: str) -> dict[str, Any]:
        for row in self.all():
            if row["id"] == policy_id:
                return row
        raise NotFoundError(f"Policy {policy_id!r} does not exist; see `caracal policy list`.")

    def _existing(self, conn: Connection, policy_id: str) -> Policy:
        policy = policy_rows.get(conn, policy_id)
        if policy is None:
            raise NotFoundError(f"Policy {policy_id!r} does not exist; see `caracal policy list`.")
        return policy

    def deactivation_impact(self, policy_id: str) -> DeactivationImpact:
        now = int(self.app.clock())
        with self.app.store.read() as conn:
            policy = self._existing(conn, policy_id)
            principal = principal_rows.get(conn, policy.principal_id)
            assert principal is not None
            live = mandate_rows.live_held_by(conn, principal.id, now) if policy.active else []
        return DeactivationImpact(policy, principal, live)

    def deactivate(self, policy_id: str, *, revoke_mandates: bool = False) -> Deactivation:
        """Deactivate a policy; with `revoke_mandates`, also revoke (in the same transaction)
        every mandate its principal holds that is still valid, and their descendants."""

        def work(conn: Connection) -> Deactivation:
            ledger_rows.lock_head(conn)  # authority changes take it first: see lock_head
            return self.deactivate_in(conn, policy_id, revoke_mandates=revoke_mandates)

        result = self.app.store.write(work)
        if result.revoked:
            self.app.mandates.announce_revoked(result.revoked)
        log.info("policy %s deactivated (%d mandates revoked)", policy_id, len(result.revoked))
        return result

    def deactivate_in(
        self, conn: Connection, policy_id: str, *, revoke_mandates: bool = False
    ) -> Deactivation:
        """Deactivate a policy in the caller's transaction (which has taken the ledger head
        first: see lock_head)."""
        policy = self._existing(conn, policy_id)
        if not policy.active:
            raise ConflictError(f"Policy {policy_id} is already inactive.")
        now = int(self.app.clock())
        live = mandate_rows.live_held_by(conn, policy.principal_id, now)
        policy_rows.deactivate(conn, policy_id)
        self.app.ledger.record(
            conn,
            NewEvent(
                "policy.deactivated",
                {
                    "policy_id": policy_id,
                    "live_mandates": len(live),
                    "mandates_revoked": revoke_mandates,
                },
                principal_id=policy.principal_id,
            ),
        )
        revoked: list[str] = []
        if revoke_mandates:
            reason = f"policy {policy_id} deactivated"
            for mandate_id in live:
                revoked += self.app.mandates.revoke_in(conn, mandate_id, reason).revoked
        return Deactivation(policy, revoked)
