"""The ledger's signed head and what vouches for it outside the store: the head and how each
copy kept outside compares with it, inclusion and consistency proofs, and accepting a rollback
those copies caught."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caracal.core.errors import IntegrityError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.tree_head import HeadFormatError, TreeHead
from caracal.store import ledger_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal
    from caracal.services.ledger_head import Discrepancy

# The ledger service's one logger name, whichever part of it logs (log filters rely on it).
log = logging.getLogger("caracal.services.ledger")


@dataclass(frozen=True)
class HeadCopy:
    """One copy of the head kept outside the store, as it is now."""

    source: str
    size: int | None  # the head it holds (None: none, or unreadable)
    state: str  # in step | N events behind | ahead of the store | holds none yet | unreadable: …
    ok: bool  # False only when it shows the store was rolled back or it cannot be read


@dataclass(frozen=True)
class HeadStatus:
    head: TreeHead
    key_sha256: str | None
    copies: list[HeadCopy]


class LedgerTrust:
    """The signed-head part of `LedgerService`."""

    app: Caracal

    def signed_head(self) -> TreeHead:
        """The store's current signed tree head."""
        with self.app.store.read() as conn:
            stored = ledger_rows.read_head(conn).signed(self.app.workspace_id)
        if stored is None:
            raise IntegrityError("The ledger head is not signed; run `caracal ledger verify`.")
        return stored

    def head_document(self) -> dict[str, Any]:
        """The signed head as `caracal ledger head --json` prints it, with the signing key's
        fingerprint and where copies are kept."""
        head = self.signed_head()
        status = self.app.ledger_heads.publisher.status
        return {
            **head.to_dict(),
            "key_sha256": self.app.ledger_heads.fingerprint(head.kid),
            "copies": [
                {**s.to_dict(), **({"recorded": True} if s.size else {})} for s in status.values()
            ],
        }

    def head_status(self) -> HeadStatus:
        """The signed head and how each copy outside the store compares with it (what Flow's
        Ledger screen shows)."""
        head = self.signed_head()
        copies = []
        for source, held, problem in self.app.ledger_heads.publisher.recorded():
            if problem:
                copies.append(HeadCopy(source, None, problem, False))
            elif held is None:
                copies.append(HeadCopy(source, None, "holds no head yet", True))
            elif held.size > head.size:
                copies.append(
                    HeadCopy(source, held.size, "AHEAD of the store (rolled back?)", False)
                )
            elif held.size == head.size:
                same = held.same_tree(head)
                copies.append(HeadCopy(source, held.size, "in step" if same else "FORKED", same))
            else:
                copies.append(HeadCopy(source, held.size, f"{head.size - held.size} behind", True))
        return HeadStatus(head, self.app.ledger_heads.fingerprint(head.kid), copies)

    def prove(self, seq: int) -> dict[str, Any]:
        from caracal.services.ledger_proofs import inclusion_proof

        return inclusion_proof(
            self.app.store, self.app.ledger_heads.pinned, self.app.workspace_id, seq
        )

    def consistency_since(self, saved: bytes) -> dict[str, Any]:
        """A consistency proof from a head saved earlier (`caracal ledger head --json`)."""
        from caracal.services.head_witnesses import parse_head
        from caracal.services.ledger_proofs import consistency_proof

        try:
            old = parse_head(saved, "the saved head")
        except HeadFormatError as exc:
            raise ValidationError(
                f"{exc}; give a file written by `caracal ledger head --json`."
            ) from None
        return consistency_proof(
            self.app.store, self.app.ledger_heads.pinned, self.app.workspace_id, old
        )

    def rollback_findings(self) -> list[Discrepancy]:
        """Every copy of the head kept outside the store that the store's ledger does not
        extend (what `accept-rollback` would accept)."""
        recorded = self.app.ledger_heads.recorded()
        with self.app.store.read(snapshot=True) as conn:
            stored = ledger_rows.read_head(conn).signed(self.app.workspace_id)
            if stored is None:
                raise IntegrityError("The ledger head is not signed; run `caracal ledger verify`.")
            self.app.ledger_heads.pinned.check(stored, "The store's ledger head")
            return self.app.ledger_heads.discrepancies(conn, stored, recorded)

    def accept_rollback(self) -> tuple[list[Discrepancy], TreeHead | None]:
        """Continue from the store's ledger: record what was accepted (an event under a new
        signed head) and make every copy outside the store hold that head."""
        findings = self.rollback_findings()
        if not findings:
            return [], None
        self.app.ledger_heads.forget_commits()
        event = NewEvent(
            "ledger.rollback_accepted",
            {
                "accepted": [
                    {
                        "source": f.source,
                        "kind": f.kind,
                        "recorded_size": f.recorded.size,
                        "recorded_root": f.recorded.root,
                        "recorded_ts": f.recorded.ts_us,
                        "stored_size": f.stored.size,
                        "stored_root": f.stored.root,
                    }
                    for f in findings
                ]
            },
        )
        self.app.store.write(lambda conn: self.app.ledger.record(conn, event))
        head = self.signed_head()
        self.app.ledger_heads.publisher.force(head)
        log.warning("ledger rollback accepted: %s", "; ".join(f.describe() for f in findings))
        return findings, head
