"""Revoking a mandate: it and every descendant, each revocation recorded, then announced to
the caches and replicas that hold them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.ledger import NewEvent
from caracal.services import change_feed
from caracal.services.mandate_reads import resolve_mandate_id
from caracal.store import ledger_rows, mandate_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

# The mandate service's one logger name, whichever part of it logs (log filters rely on it).
log = logging.getLogger("caracal.services.mandates")


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


class MandateRevocation:
    """The revoking part of `MandateService`."""

    app: Caracal

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
            return mandate_rows.subtree(conn, resolve_mandate_id(conn, mandate_id))

    def revoke(self, mandate_id: str, reason: str | None = None) -> Revocation:
        def work(conn: Connection) -> Revocation:
            ledger_rows.lock_head(conn)  # no delegation below the mandate commits unseen
            return self.revoke_in(conn, resolve_mandate_id(conn, mandate_id), reason)

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
