"""Recording in the ledger: events appended inside callers' transactions under a new signed
head, and the heads kept in the history (checkpoints)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.ledger import NewEvent
from caracal.core.tree_head import TreeHead
from caracal.store import ledger_rows
from caracal.store.engine import after_commit

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

KEPT_HEAD_EVENT = "ledger.head_kept"


class LedgerRecording:
    """The writing part of `LedgerService`."""

    app: Caracal

    def record(
        self, conn: Connection, *events: NewEvent, locked: ledger_rows.StoredHead | None = None
    ) -> int:
        """Append events in the caller's transaction and sign the new tree head; the head is
        published outside the store once the transaction commits. Returns the sequence number
        of the last of `events`. `locked` is the head this transaction already read with its
        lock (`read_head(conn, lock=True)`) and has not appended to since: it is not read
        again."""
        if not events:
            return 0
        heads = self.app.ledger_heads
        head = locked if locked is not None else ledger_rows.read_head(conn, lock=True)
        heads.trust(head)
        ts_us = int(self.app.clock() * 1_000_000)
        appended = ledger_rows.append(
            conn, events, head=head, actor=self.app.actor, ts_us=ts_us, frontier=heads.tree_of(head)
        )
        signed = heads.sign(conn, appended, ts_us)
        every = self.app.config.ledger.checkpoint_every
        if head.size // every != signed.size // every:
            signed = self._keep(conn, signed, ts_us)
        final = signed
        after_commit(conn, lambda: heads.committed(final))
        return appended.size

    def _keep(self, conn: Connection, head: TreeHead, ts_us: int) -> TreeHead:
        """Keep `head` in the history, and record that it was kept (so the history, like every
        other table, is derivable from the events: a deleted kept head is noticed)."""
        ledger_rows.insert_checkpoint(conn, head)
        kept = NewEvent(KEPT_HEAD_EVENT, {"size": head.size, "root": head.root, "ts": head.ts_us})
        stored = ledger_rows.read_head(conn)
        appended = ledger_rows.append(
            conn,
            [kept],
            head=stored,
            actor=self.app.actor,
            ts_us=ts_us,
            frontier=self.app.ledger_heads.tree_of(stored),
        )
        return self.app.ledger_heads.sign(conn, appended, ts_us)

    def checkpoint(self) -> dict[str, Any] | None:
        """Keep the current signed head in the history and send the newest head to every
        witness now (e.g. before a backup). None when it is already kept."""

        def work(conn: Connection) -> TreeHead | None:
            stored = ledger_rows.read_head(conn, lock=True)
            self.app.ledger_heads.trust(stored)
            signed = stored.signed(self.app.workspace_id)
            kept = ledger_rows.last_checkpoint_size(conn)
            # Nothing new: the head is kept, or all that followed is the event recording it.
            if (
                signed is None
                or kept >= signed.size
                or (
                    kept == signed.size - 1
                    and ledger_rows.event_type(conn, signed.size) == KEPT_HEAD_EVENT
                )
            ):
                return None
            ts_us = int(self.app.clock() * 1_000_000)
            newest = self._keep(conn, signed, ts_us)
            after_commit(conn, lambda: self.app.ledger_heads.committed(newest))
            return signed

        kept = self.app.store.write(work)
        self.app.ledger_heads.publisher.flush()
        if kept is None:
            return None
        return {"size": kept.size, "root": kept.root, "ts": kept.ts_us}
