"""Validate a mandate for one action on one resource, and record the decision."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.ledger import NewEvent
from caracal.core.validation import Decision
from caracal.services.authority_state import StoreAuthorityState
from caracal.store import mandate_rows, principal_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)


class ValidationService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    def validate(
        self,
        action: str,
        resource: str,
        *,
        token: str | None = None,
        mandate_id: str | None = None,
        caller: str | None = None,
        intent: Any = None,
    ) -> Decision:
        """Decide fail-closed and record the decision in the ledger, in one transaction."""

        def work(conn: Connection) -> Decision:
            presented = token
            if presented is None and mandate_id is not None:
                found = mandate_rows.state(conn, mandate_id)
                presented = found[0] if found else None
                if presented is None:
                    decision = Decision(
                        False, "MANDATE_UNKNOWN", f"mandate {mandate_id} does not exist", None
                    )
                    self._record(conn, decision, action, resource, caller, None)
                    return decision
            caller_id = self._caller_id(conn, caller)
            state = StoreAuthorityState(conn, self.app.workspace_id, self.app.signing)
            decision = self.app.validator.validate(
                presented,
                action,
                resource,
                state,
                self.app.clock(),
                caller=caller_id,
                intent=intent,
            )
            self._record(conn, decision, action, resource, caller, presented)
            return decision

        decision = self.app.store.write(work)
        log.info(
            "validation %s: %s %s on %s",
            decision.reason_code,
            decision.mandate_id,
            action,
            resource,
        )
        return decision

    @staticmethod
    def _caller_id(conn: Connection, caller: str | None) -> str | None:
        if caller is None:
            return None
        found = principal_rows.find(conn, caller)
        # An unknown caller can never be the subject; keep the raw value so it cannot match.
        return found.id if found else f"unknown:{caller}"

    def _record(
        self,
        conn: Connection,
        decision: Decision,
        action: str,
        resource: str,
        caller: str | None,
        token: str | None,
    ) -> None:
        self.app.ledger.record(conn, decision_event(decision, action, resource, caller, token))


def decision_event(
    decision: Decision,
    action: str,
    resource: str,
    caller: str | None,
    token: str | None,
    **extra: Any,
) -> NewEvent:
    """The ledger event of one decision. The token itself never enters the ledger."""
    payload: dict[str, Any] = {
        "action": action[:256],
        "resource": resource[:256],
        "caller": caller[:128] if caller else None,
        "reason": decision.reason[:512],
        **extra,
    }
    if token:
        # Enough to correlate attempts with one token.
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        payload["token_sha256"] = digest[:16]
    return NewEvent(
        "validation.allowed" if decision.allowed else "validation.denied",
        payload,
        principal_id=decision.subject_id,
        mandate_id=decision.mandate_id,
        reason_code=decision.reason_code,
    )
