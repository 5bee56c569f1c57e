"""Verifying a ledger: the hash chain, the signed checkpoints (against the keys pinned in the
workspace folder) and their coverage, and the head, all on one snapshot."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, func, select

from caracal.core.keys import b64url_decode, verify
from caracal.core.ledger import GENESIS_HASH, checkpoint_message
from caracal.services import ledger_keys
from caracal.store import ledger_rows, ledger_scan
from caracal.store.engine import Store
from caracal.store.schema import ledger_events

# Below this, a worker process costs more than the second core saves.
PARALLEL_VERIFY_MIN = 200_000
Checkpoint = tuple[int, int, str, str, str]  # seq_from, seq_to, head_hash, kid, signature


@dataclass
class VerifyReport:
    ok: bool
    events: int
    checkpoints: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problem": self.problem,
            "seconds": round(self.seconds, 3),
        }


def verify_ledger(
    store: Store,
    keys_dir: Path,
    workspace_id: str,
    checkpoint_every: int,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Recompute the chain, check every checkpoint against the pinned ledger keys, and check
    that checkpoints cover the ledger without gaps. One snapshot throughout, so concurrent
    appends never look like tampering. Large ledgers are walked in two halves, the second in
    a worker process."""
    started = time.perf_counter()
    pinned = ledger_keys.pinned_keys(keys_dir)
    with store.read(snapshot=True) as conn:
        head_seq, head_hash = ledger_rows.head(conn)
        checkpoints = ledger_rows.checkpoints(conn)
        wanted = {cp[1] for cp in checkpoints}
        on_rows = (lambda n: progress(n, head_seq)) if progress is not None else None
        if head_seq >= PARALLEL_VERIFY_MIN and (os.cpu_count() or 1) > 1:
            walk = _walk_in_halves(store, conn, head_seq, wanted, on_rows)
        else:
            walk = ledger_scan.walk_cursor(
                _cursor(conn, streaming=True), _placeholder(conn), 1, None, wanted, on_rows
            )
    report = VerifyReport(True, walk.count, len(checkpoints), head_seq, head_hash)
    last_seq = walk.expected_seq - 1
    report.problem = walk.failure.describe() if walk.failure else None
    report.problem = report.problem or checkpoint_problem(
        workspace_id, last_seq, walk.seen, checkpoints, pinned, checkpoint_every
    )
    report.problem = report.problem or _head_problem(last_seq, walk.last_hash, head_seq, head_hash)
    report.ok = report.problem is None
    report.seconds = time.perf_counter() - started
    return report


def _walk_in_halves(
    store: Store,
    conn: Connection,
    head_seq: int,
    wanted: set[int],
    on_rows: Callable[[int], None] | None,
) -> ledger_scan.RangeResult:
    location = store.location
    backend = location.backend
    dsn = (
        location.url.removeprefix("sqlite:///")
        if backend == "sqlite"
        else location.url.replace("+psycopg", "", 1)
    )
    mid = head_seq // 2
    worker = ledger_scan.run_worker(backend, dsn, location.pg_schema, mid + 1, head_seq, wanted)
    try:
        first = ledger_scan.walk_cursor(
            _cursor(conn, streaming=True), _placeholder(conn), 1, mid, wanted, on_rows
        )
    except BaseException:
        worker.kill()
        worker.communicate()
        raise
    joined = ledger_scan.join(first, ledger_scan.collect(worker, mid + 1))
    # The halves stop at the head; anything stored beyond it is reported by the head check.
    beyond = conn.execute(select(func.max(ledger_events.c.seq))).scalar() or 0
    if joined.failure is None and beyond > head_seq:
        joined.expected_seq = beyond + 1
    return joined


def checkpoint_problem(
    workspace_id: str,
    last_seq: int,
    seen: dict[int, str],
    checkpoints: list[Checkpoint],
    pinned: dict[str, ec.EllipticCurvePublicKey],
    checkpoint_every: int,
) -> str | None:
    covered, widest = 0, 0
    for seq_from, seq_to, cp_hash, kid, signature in checkpoints:
        label = f"checkpoint over events {seq_from}-{seq_to}"
        if seq_from != covered + 1 or seq_to < seq_from:
            return f"{label}: checkpoints do not follow on from event {covered} (one was removed)"
        key = pinned.get(kid)
        if key is None:
            return f"{label}: signed by key {kid}, which this workspace did not pin in keys/"
        message = checkpoint_message(workspace_id, seq_from, seq_to, cp_hash)
        try:
            signature_ok = verify(key, message, b64url_decode(signature))
        except ValueError:
            signature_ok = False
        if not signature_ok:
            return f"{label}: signature does not verify"
        if seq_to > last_seq:
            return f"{label}: the ledger ends at event {last_seq} (events were removed)"
        if seen.get(seq_to) != cp_hash:
            return f"{label}: event {seq_to} is not the event that was signed"
        covered, widest = seq_to, max(widest, seq_to - seq_from + 1)
    # Appends sign a checkpoint at every boundary they cross, so a long unsealed tail means
    # checkpoints were deleted.
    if last_seq - covered > max(checkpoint_every, widest):
        return (
            f"events {covered + 1}-{last_seq} are not covered by any checkpoint "
            "(checkpoints were removed)"
        )
    return None


def _head_problem(
    last_seq: int, last_hash: str | None, head_seq: int, head_hash: str
) -> str | None:
    expected_hash = last_hash if last_seq > 0 else GENESIS_HASH
    if head_seq != last_seq or head_hash != expected_hash:
        return (
            f"ledger head records event {head_seq} but the last event is {last_seq} "
            "(events were removed or added outside Caracal)"
        )
    return None


def _cursor(conn: Connection, *, streaming: bool = False) -> Any:
    dbapi: Any = conn.connection.dbapi_connection
    if streaming and conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="caracal_ledger_verify")
        cursor.itersize = ledger_scan.BATCH
        return cursor
    return dbapi.cursor()


def _placeholder(conn: Connection) -> str:
    return "%s" if conn.dialect.name == "postgresql" else "?"
