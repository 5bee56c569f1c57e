"""Ledger rows: chained appends under the head lock, reads in sequence order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import Connection, Select, func, select

from caracal.core.ledger import NewEvent, Row, seal
from caracal.store.schema import ledger_checkpoints, ledger_events, ledger_head

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


def head(conn: Connection, *, lock: bool = False) -> tuple[int, str]:
    query = select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1)
    if lock:
        query = query.with_for_update()  # PostgreSQL row lock; SQLite already holds the writer lock
    row = conn.execute(query).one()
    return int(row.seq), str(row.hash)


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
    conn.execute(ledger_events.insert(), [dict(zip(COLUMNS, row, strict=True)) for row in rows])
    last_seq, last_hash = rows[-1][0], rows[-1][9]
    conn.execute(
        ledger_head.update().where(ledger_head.c.id == 1).values(seq=last_seq, hash=last_hash)
    )
    if on_checkpoint is not None:
        by_seq = {row[0]: row[9] for row in rows}
        boundary = (seq // checkpoint_every + 1) * checkpoint_every
        while boundary <= last_seq:
            on_checkpoint(conn, boundary, by_seq[boundary])
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


def all_rows_query() -> Select[tuple[object, ...]]:
    return select(*(ledger_events.c[name] for name in COLUMNS)).order_by(ledger_events.c.seq)


def stream_rows(conn: Connection, batch: int = 20_000) -> Iterator[list[Row]]:
    """Every event in sequence order, in batches, without loading the whole ledger."""
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(all_rows_query())
    for part in result.partitions(batch):
        yield [tuple(r) for r in part]  # type: ignore[misc]
