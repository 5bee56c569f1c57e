"""Ledger rows: chained appends under the head lock, reads in sequence order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, func, select

from caracal.core.ledger import NewEvent, Row, seal
from caracal.store import raw
from caracal.store.raw import Sql
from caracal.store.schema import ledger_checkpoints

COLUMNS = (
    "seq",
    "ts",
    "type",
    "actor",
    "principal_id",
    "mandate_id",
    "reason_code",
    "payload",
    "prev_hash",
    "hash",
)
# Called for every checkpoint boundary an append crosses, with (seq_to, hash of that event).
CheckpointSigner = Callable[[Connection, int, str], None]


_HEAD = Sql(
    "SELECT seq, hash FROM ledger_head WHERE id = 1",
    # PostgreSQL: writers serialise on this row; SQLite's BEGIN IMMEDIATE already did.
    postgresql="SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE",
)
_HEAD_READ = Sql("SELECT seq, hash FROM ledger_head WHERE id = 1")
_SET_HEAD = Sql("UPDATE ledger_head SET seq = :seq, hash = :hash WHERE id = 1")
_INSERT = Sql(
    "INSERT INTO ledger_events (seq, ts, type, actor, principal_id, mandate_id, reason_code, "
    "payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def head(conn: Connection, *, lock: bool = False) -> tuple[int, str]:
    row = raw.one(conn, _HEAD if lock else _HEAD_READ, {})
    if row is None:
        raise LookupError("the ledger head row is missing")
    return int(row[0]), str(row[1])


def lock_head(conn: Connection) -> None:
    """Take the ledger head lock before the transaction's first read. On PostgreSQL (READ
    COMMITTED) this serialises a revocation with a delegation from the mandates it revokes,
    which would otherwise each miss the other's uncommitted row; every transaction that changes
    authority takes it first, so none waits for it while holding another lock (no lock-order
    cycle). SQLite's BEGIN IMMEDIATE already serialised every writer."""
    head(conn, lock=True)


def append(
    conn: Connection,
    events: Sequence[NewEvent],
    *,
    actor: str | None,
    ts_us: int,
    checkpoint_every: int,
    on_checkpoint: CheckpointSigner | None,
) -> list[Row]:
    """Append `events` after the current head in this transaction; sign crossed checkpoints."""
    if not events:
        return []
    seq, prev = head(conn, lock=True)
    rows = seal(events, first_seq=seq + 1, prev_hash=prev, ts_us=ts_us, actor=actor)
    raw.run_many(conn, _INSERT, rows)
    last_seq, last_hash = rows[-1][0], rows[-1][9]
    raw.run(conn, _SET_HEAD, {"seq": last_seq, "hash": last_hash})
    if on_checkpoint is not None:
        boundary = (seq // checkpoint_every + 1) * checkpoint_every
        while boundary <= last_seq:
            on_checkpoint(conn, boundary, rows[boundary - seq - 1][9])
            boundary += checkpoint_every
    return rows


def insert_checkpoint(
    conn: Connection,
    seq_from: int,
    seq_to: int,
    head_hash: str,
    kid: str,
    signature: str,
    ts_us: int,
) -> None:
    conn.execute(
        ledger_checkpoints.insert().values(
            seq_to=seq_to,
            seq_from=seq_from,
            head_hash=head_hash,
            kid=kid,
            signature=signature,
            created_at=ts_us,
        )
    )


def last_checkpoint_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.max(ledger_checkpoints.c.seq_to))).scalar() or 0)


def checkpoints(conn: Connection) -> list[tuple[int, int, str, str, str]]:
    rows = conn.execute(
        select(
            ledger_checkpoints.c.seq_from,
            ledger_checkpoints.c.seq_to,
            ledger_checkpoints.c.head_hash,
            ledger_checkpoints.c.kid,
            ledger_checkpoints.c.signature,
        ).order_by(ledger_checkpoints.c.seq_to)
    )
    return [(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]
