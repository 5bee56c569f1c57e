"""Delegating from a mandate: a narrower mandate, signed by the source's subject, for another
principal; and who the rules let receive one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core import jws
from caracal.core.authority import SourceState, decide_delegation
from caracal.core.canonical import check_intent_size, intent_hash
from caracal.core.durations import parse_duration
from caracal.core.errors import DeniedError
from caracal.core.ledger import NewEvent
from caracal.core.mandates import MandateClaims
from caracal.services.authority_state import StoreAuthorityState
from caracal.services.mandate_issuance import (
    IssuedMandate,
    check_depth,
    commit_issued,
    issued_event,
    sign_and_store,
)
from caracal.services.mandate_reads import resolve_mandate_id
from caracal.services.principals import resolve
from caracal.store import ledger_rows, mandate_rows, policy_rows

if TYPE_CHECKING:
    from caracal.services.delegation_options import DelegationOptions
    from caracal.services.facade import Caracal


class MandateDelegation:
    """The delegating part of `MandateService`."""

    app: Caracal

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
            check_depth(delegation_depth)
        if intent is not None:
            check_intent_size(intent)

        def work(conn: Connection) -> IssuedMandate | DeniedError:
            ledger_rows.lock_head(conn)  # serialised with any revocation of the source
            source_row = mandate_rows.get(conn, resolve_mandate_id(conn, source_id))
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
            issued = sign_and_store(
                self.app, conn, plan, delegator.name, now, root_id=source_row["root_id"]
            )
            self.app.ledger.record(conn, issued_event("mandate.delegated", issued))
            return issued

        return commit_issued(self.app, work)

    def delegation_options(self, source_id: str) -> DelegationOptions:
        """Who the rules let receive a delegation from `source_id` (and how deep), who not and
        why, or why nothing can be delegated from it (see delegation_options)."""
        from caracal.services.delegation_options import delegation_options

        return delegation_options(self.app, source_id)
