"""Verifying a ledger on one snapshot: every event's hash and link, the Merkle tree against the
signed head, the kept history of heads and the heads recorded outside the store against the
tree, and the authority state against the events that should have produced it.

Large ledgers are walked in two ranges, the second in a worker process (in pieces whose trees
merge into the first range's)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from caracal.core.ledger import GENESIS_HASH
from caracal.core.merkle import Frontier
from caracal.core.tree_head import TreeHead
from caracal.services.ledger_head import PinnedKeys, events_between, head_time
from caracal.store import ledger_rows, ledger_scan
from caracal.store.engine import Store

# Below this, a worker process costs more than the second core saves.
PARALLEL_VERIFY_MIN = 200_000
# A copy of the head kept outside the store: (where, the head it holds, why it is unreadable).
Recorded = tuple[str, TreeHead | None, str | None]
# Compares the authority tables with the replayed events; returns the first difference.
StateCheck = Callable[[Connection, list[Any]], "tuple[int, str | None]"]


@dataclass
class VerifyReport:
    ok: bool
    events: int
    checkpoints: int
    head_seq: int
    head_hash: str
    head: TreeHead | None = None
    problem: str | None = None
    seconds: float = 0.0
    state_rows: int = 0
    copies: list[dict[str, Any]] = field(default_factory=list)
    since: int = 0  # > 0: only events after this one were walked (an incremental verify)
    tree: Frontier | None = None  # the verified tree, where the next incremental verify starts

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "head": self.head.to_dict() if self.head else None,
            "state_rows": self.state_rows,
            "copies": self.copies,
            "since": self.since,
            "problem": self.problem,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class VerifiedPoint:
    """A tree this process (or an earlier verify) established as intact: where an
    incremental verify starts."""

    size: int
    last_hash: str
    tree: Frontier


def verify_ledger(
    store: Store,
    pinned: PinnedKeys,
    workspace_id: str,
    recorded: list[Recorded],
    *,
    state_check: StateCheck | None = None,
    since: VerifiedPoint | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Everything `caracal ledger verify` checks; `problem` names the first thing wrong."""
    started = time.perf_counter()
    with store.read(snapshot=True) as conn:
        try:
            stored = ledger_rows.read_head(conn)
        except LookupError:
            return VerifyReport(
                False, 0, 0, 0, "", problem="the ledger head row is missing (it was deleted)"
            )
        checkpoints = ledger_rows.checkpoints(conn, workspace_id)
        heads = [h for _, h, _ in recorded if h is not None and h.workspace_id == workspace_id]
        lo = since.size + 1 if since is not None else 1
        wanted = {h.size for h in (*checkpoints, *heads) if h.size >= lo}
        total = stored.size
        on_rows = (lambda n: progress(n, total - lo + 1)) if progress is not None else None
        if since is None and total >= PARALLEL_VERIFY_MIN and (os.cpu_count() or 1) > 1:
            walk = _walk_in_halves(store, conn, total, wanted, on_rows, state_check is not None)
        else:
            walk = ledger_scan.walk_cursor(
                _cursor(conn, streaming=True),
                _placeholder(conn),
                lo,
                None,
                wanted,
                on_rows,
                keep_state=state_check is not None,
                after=(since.last_hash, since.tree) if since is not None else None,
                batch=_batch(conn),
            )
        report = VerifyReport(
            True, walk.count, len(checkpoints), stored.size, stored.last_hash, since=lo - 1
        )
        report.head = stored.signed(workspace_id)
        report.problem = _tree_problem(walk, stored, report.head, pinned, lo)
        if since is not None:  # the walk remembers the verified point's tree and last hash
            walk.trees.setdefault(since.size, since.tree)
            walk.seen.setdefault(since.size, since.last_hash)
        if report.problem is None:
            report.problem = _history_problem(walk, checkpoints, pinned, "kept head", lo)
        report.copies = _copies(walk, recorded, workspace_id, pinned, lo)
        if report.problem is None:
            report.problem = next((c["problem"] for c in report.copies if c["problem"]), None)
        if report.problem is None and state_check is not None:
            report.state_rows, report.problem = state_check(conn, walk.state_events)
    report.ok = report.problem is None
    if report.ok:
        report.tree = walk.tree
    report.seconds = time.perf_counter() - started
    return report


def split_point(size: int) -> int:
    """Where to split `size` events between two walkers: just past the middle (the worker
    starts later), on a multiple of a power of two near size / 128, so that the worker's range
    needs few pieces (`ledger_scan.aligned_cuts`)."""
    step = 1 << max(0, size.bit_length() - 7)
    return min(size - 1, -(-(size // 2) // step) * step)


def _walk_in_halves(
    store: Store,
    conn: Connection,
    head_seq: int,
    wanted: set[int],
    on_rows: Callable[[int], None] | None,
    keep_state: bool,
) -> ledger_scan.RangeResult:
    location = store.location
    backend = location.backend
    dsn = (
        location.url.removeprefix("sqlite:///")
        if backend == "sqlite"
        else location.url.replace("+psycopg", "", 1)
    )
    mid = split_point(head_seq)
    worker = ledger_scan.run_worker(
        backend, dsn, location.pg_schema, mid + 1, head_seq, wanted, keep_state
    )
    try:
        first = ledger_scan.walk_cursor(
            _cursor(conn, streaming=True),
            _placeholder(conn),
            1,
            mid,
            wanted,
            on_rows,
            keep_state=keep_state,
            batch=_batch(conn),
        )
    except BaseException:
        worker.kill()
        worker.communicate()
        raise
    joined = first
    for piece in ledger_scan.collect(worker):
        joined = ledger_scan.join(joined, piece)
    # The ranges stop at the head; anything stored beyond it is reported by the head check.
    beyond = ledger_rows.last_seq(conn)
    if joined.failure is None and beyond > head_seq:
        joined.expected_seq = beyond + 1
    return joined


def _tree_problem(
    walk: ledger_scan.RangeResult,
    stored: ledger_rows.StoredHead,
    signed: TreeHead | None,
    pinned: PinnedKeys,
    lo: int,
) -> str | None:
    if walk.failure is not None:
        return walk.failure.describe()
    last_seq = walk.expected_seq - 1
    last_hash = walk.last_hash if last_seq > 0 else GENESIS_HASH
    if stored.size != last_seq:
        return (
            f"the ledger head records event {stored.size} but the last event is {last_seq} "
            "(events were removed or added outside Caracal)"
        )
    if stored.last_hash != last_hash:
        return f"event {last_seq} is not the event the ledger head records (history was rewritten)"
    if signed is None:
        return f"the ledger head (event {stored.size}) is not signed"
    key = pinned.get(signed.kid)
    if key is None:
        return (
            f"the ledger head is signed by key {signed.kid}, which this workspace did not pin "
            "in keys/"
        )
    if not signed.verify(key):
        return "the ledger head's signature does not verify (the head was forged)"
    if walk.tree.size != stored.size or walk.tree.root().hex() != signed.root:
        return (
            f"the Merkle tree over events 1-{stored.size} does not match the signed root "
            "(history was rewritten)"
        )
    return None


def _history_problem(
    walk: ledger_scan.RangeResult, heads: list[TreeHead], pinned: PinnedKeys, what: str, lo: int
) -> str | None:
    last_seq = walk.expected_seq - 1
    for head in heads:
        if head.size < lo - 1:  # an incremental verify: checked by an earlier verify
            continue
        label = f"the {what} at event {head.size} (signed {head_time(head.ts_us)})"
        key = pinned.get(head.kid)
        if key is None:
            return f"{label} is signed by key {head.kid}, which this workspace did not pin"
        if not head.verify(key):
            return f"{label} does not carry a valid signature (it was forged)"
        problem = _prefix_problem(walk, head, last_seq)
        if problem:
            return f"{label}: {problem}"
    return None


def _prefix_problem(walk: ledger_scan.RangeResult, head: TreeHead, last_seq: int) -> str | None:
    if head.size > last_seq:
        return (
            f"the ledger ends at event {last_seq}: {events_between(last_seq + 1, head.size)} "
            "removed (the store was rolled back)"
        )
    tree = walk.trees.get(head.size)
    if walk.seen.get(head.size) != head.last_hash or tree is None or tree.root().hex() != head.root:
        return (
            f"event {head.size} and the events before it are not the ones that were signed "
            "(history was rewritten)"
        )
    return None


def _copies(
    walk: ledger_scan.RangeResult,
    recorded: list[Recorded],
    workspace_id: str,
    pinned: PinnedKeys,
    lo: int,
) -> list[dict[str, Any]]:
    """How each copy of the head kept outside the store compares with the walked tree."""
    last_seq = walk.expected_seq - 1
    out: list[dict[str, Any]] = []
    for source, head, unreadable in recorded:
        entry: dict[str, Any] = {"source": source, "size": None, "status": "", "problem": None}
        if unreadable:
            entry["status"] = unreadable
        elif head is None:
            entry["status"] = "holds no head yet (or cannot be read back)"
        elif head.workspace_id != workspace_id:
            entry["status"] = f"holds a head of workspace {head.workspace_id}"
        else:
            entry["size"] = head.size
            key = pinned.get(head.kid)
            if key is None or not head.verify(key):
                entry["status"] = "holds a head that does not verify (ignored)"
            elif walk.failure is not None:
                entry["status"] = "not compared (the ledger is broken)"
            elif head.size < lo - 1:
                entry["status"] = "older than the last verified head (checked then)"
            else:
                problem = _prefix_problem(walk, head, last_seq)
                entry["status"] = "consistent" if problem is None else "inconsistent"
                if problem:
                    entry["problem"] = f"the head kept in the {source}: {problem}"
        out.append(entry)
    return out


def _cursor(conn: Connection, *, streaming: bool = False) -> Any:
    dbapi: Any = conn.connection.dbapi_connection
    if streaming and conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="caracal_ledger_verify")
        cursor.itersize = ledger_scan.BATCH
        return cursor
    return dbapi.cursor()


def _batch(conn: Connection) -> int:
    return ledger_scan.BATCH if conn.dialect.name == "postgresql" else ledger_scan.SQLITE_BATCH


def _placeholder(conn: Connection) -> str:
    return "%s" if conn.dialect.name == "postgresql" else "?"
