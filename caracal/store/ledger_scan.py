"""Walk a range of the ledger, possibly in a worker process.

`ledger verify` over a million events is bound by fetching rows and hashing them, both on one
core; splitting the sequence range over two processes uses the second core. The worker is a
plain `python -m caracal.store.ledger_scan` child (JSON on stdin and stdout), so it never
re-imports the caller's main module, and it loads only the database driver and the pure core.

A range that starts after `lo - 1` events grows its Merkle trees as if each started at leaf 0,
one per aligned piece (`aligned_cuts`): joined in order after the tree of the events before
it, each piece's frontier merges into the whole tree exactly, since none of its perfect
subtrees is larger than the largest power of two dividing the size it is joined to.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from caracal.core.ledger import GENESIS_HASH, ChainBreak, ChainWalk, Row
from caracal.core.merkle import Frontier

# Rows per fetch: a PostgreSQL round trip brings many; SQLite rows are made in this process,
# and a batch that stays in the CPU cache is walked faster than one fetched ahead.
BATCH = 20_000
SQLITE_BATCH = 1_000
_COLUMNS = "seq, ts, type, actor, principal_id, mandate_id, reason_code, payload, prev_hash, hash"


@dataclass
class RangeResult:
    lo: int
    count: int = 0
    failure: ChainBreak | None = None
    first_prev_hash: str | None = None
    expected_seq: int = 0
    last_hash: str | None = None
    seen: dict[int, str] = field(default_factory=dict)
    tree: Frontier = field(default_factory=Frontier)
    trees: dict[int, Frontier] = field(default_factory=dict)
    state_events: list[Row] = field(default_factory=list)


def walk_cursor(
    cursor: Any,
    placeholder: str,
    lo: int,
    hi: int | None,
    wanted: set[int],
    progress: Any = None,
    *,
    keep_state: bool = False,
    after: tuple[str, Frontier] | None = None,
    batch: int = BATCH,
) -> RangeResult:
    """Walk rows lo..hi (hi None: to the end) read through a DBAPI cursor, `batch` rows per
    fetch. `after` continues a verified ledger of lo - 1 events: the hash of its last event
    and its tree."""
    return walk_pieces(
        cursor,
        placeholder,
        lo,
        hi,
        wanted,
        progress,
        keep_state=keep_state,
        after=after,
        batch=batch,
    )[0]


def walk_pieces(
    cursor: Any,
    placeholder: str,
    lo: int,
    hi: int | None,
    wanted: set[int],
    progress: Any = None,
    *,
    keep_state: bool = False,
    after: tuple[str, Frontier] | None = None,
    cuts: Sequence[int] = (),
    batch: int = BATCH,
) -> list[RangeResult]:
    """`walk_cursor` in one chain walk whose tree starts afresh after each sequence number in
    `cuts` (`aligned_cuts`): one result per piece, to be joined in order. A piece ends where
    the walk stops (at a break or the last row)."""
    where = f"seq >= {placeholder}" + (f" AND seq <= {placeholder}" if hi is not None else "")
    params = (lo,) if hi is None else (lo, hi)
    cursor.execute(f"SELECT {_COLUMNS} FROM ledger_events WHERE {where} ORDER BY seq", params)  # noqa: S608 - fixed text
    if after is not None:
        prev_hash: str | None = after[0]
    else:
        prev_hash = GENESIS_HASH if lo == 1 else None
    walk = ChainWalk(
        wanted,
        expected_seq=lo,
        prev_hash=prev_hash,
        tree=after[1] if after is not None else None,
        keep_state=keep_state,
    )
    pieces: list[RangeResult] = []
    ends = iter([c for c in cuts if c >= lo and (hi is None or c < hi)])
    end = next(ends, None)
    piece_lo, first_prev, counted, kept = lo, after[0] if after is not None else None, 0, 0

    def close() -> None:
        nonlocal piece_lo, first_prev, counted, kept
        pieces.append(
            RangeResult(
                lo=piece_lo,
                count=walk.count - counted,
                failure=walk.failure,
                first_prev_hash=first_prev if pieces or after is not None else walk.first_prev_hash,
                expected_seq=walk.expected_seq,
                last_hash=walk.prev_hash,
                seen=walk.seen,
                tree=walk.tree,
                trees=walk.trees,
                state_events=walk.state_events[kept:],
            )
        )
        piece_lo, first_prev = walk.expected_seq, walk.prev_hash
        counted, kept = walk.count, len(walk.state_events)
        walk.seen, walk.tree, walk.trees = {}, Frontier(), {}

    intact, reported = True, 0
    # The walk makes no reference cycles; the collector would trace every fetched row.
    collecting = gc.isenabled()
    gc.disable()
    try:
        while intact:
            rows = cursor.fetchmany(batch)
            if not rows:
                break
            at = 0
            while at < len(rows):
                # Intact rows are consecutive: the rows up to the cut are counted, not compared.
                take = len(rows) - at if end is None else end + 1 - walk.expected_seq
                chunk = rows[at : at + take] if at or take < len(rows) else rows
                at += len(chunk)
                if not walk.feed(chunk):
                    intact = False
                    break
                if end is not None and walk.expected_seq == end + 1:
                    close()
                    end = next(ends, None)
            if progress is not None and walk.count >= reported + BATCH:
                reported = walk.count
                progress(reported)
    finally:
        if collecting:
            gc.enable()
    close()
    if progress is not None and walk.count != reported:
        progress(walk.count)
    return pieces


def aligned_cuts(lo: int, hi: int) -> list[int]:
    """Where a walk of events lo..hi must start new trees so that each piece's tree, grown as
    if from leaf 0, merges exactly into the tree of the events before it: a piece that starts
    after `n` events may hold no perfect subtree larger than the largest power of two
    dividing `n`."""
    cuts: list[int] = []
    done = lo - 1
    while 0 < done < hi:
        rest = hi - done
        if done % (1 << (rest.bit_length() - 1)) == 0:
            break
        done += done & -done
        cuts.append(done)
    return cuts


def scan_range(
    backend: str,
    dsn: str,
    pg_schema: str | None,
    lo: int,
    hi: int,
    wanted: set[int],
    keep_state: bool,
) -> list[RangeResult]:
    """Worker entry point: open a private connection and walk lo..hi in aligned pieces."""
    cuts = aligned_cuts(lo, hi)
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(f"file:{dsn}?mode=ro", uri=True)
        try:
            return walk_pieces(
                conn.cursor(),
                "?",
                lo,
                hi,
                wanted,
                keep_state=keep_state,
                cuts=cuts,
                batch=SQLITE_BATCH,
            )
        finally:
            conn.close()
    import psycopg

    from caracal.store.engine import pg_connect_args

    with (
        psycopg.connect(dsn, **pg_connect_args(options=f"-csearch_path={pg_schema}")) as pg,
        pg.cursor(name="caracal_ledger_scan") as cursor,
    ):
        cursor.itersize = BATCH
        return walk_pieces(cursor, "%s", lo, hi, wanted, keep_state=keep_state, cuts=cuts)


def join(first: RangeResult, second: RangeResult) -> RangeResult:
    """Two adjacent ranges as one walk; the seam is checked like any other link."""
    if first.failure is not None or (second.count == 0 and second.failure is None):
        return first
    if second.first_prev_hash != first.last_hash:
        failure = ChainBreak(second.lo, None, "prev_hash does not link to the event before it")
        if second.failure is not None and second.failure.seq == second.lo:
            failure = second.failure  # says more (missing, out of order) about the same event
        first.failure, first.expected_seq = failure, second.lo
        return first
    trees = dict(first.trees)
    for seq, partial in second.trees.items():
        trees[seq] = first.tree.merged(partial)
    return RangeResult(
        first.lo,
        first.count + second.count,
        second.failure,
        first.first_prev_hash,
        second.expected_seq,
        second.last_hash,
        {**first.seen, **second.seen},
        first.tree.merged(second.tree),
        trees,
        first.state_events + second.state_events,
    )


def run_worker(
    backend: str,
    dsn: str,
    pg_schema: str | None,
    lo: int,
    hi: int,
    wanted: set[int],
    keep_state: bool,
) -> subprocess.Popen[bytes]:
    """Start a worker walking lo..hi; collect it with `collect`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "caracal.store.ledger_scan"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    request = {
        "backend": backend,
        "dsn": dsn,
        "pg_schema": pg_schema,
        "lo": lo,
        "hi": hi,
        "wanted": sorted(wanted),
        "keep_state": keep_state,
    }
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(request).encode())
    proc.stdin.close()
    proc.stdin = None  # sent; `communicate` must not touch it again
    return proc


def _frontier(data: list[Any]) -> Frontier:
    return Frontier.decode(int(data[0]), str(data[1]))


def collect(proc: subprocess.Popen[bytes]) -> list[RangeResult]:
    """The worker's pieces, in order."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"ledger scan worker failed: {last[0]}")
    return [_piece(data) for data in json.loads(out)]


def _piece(data: dict[str, Any]) -> RangeResult:
    failure = data["failure"]
    return RangeResult(
        lo=data["lo"],
        count=data["count"],
        failure=ChainBreak(*failure) if failure else None,
        first_prev_hash=data["first_prev_hash"],
        expected_seq=data["expected_seq"],
        last_hash=data["last_hash"],
        seen={int(k): v for k, v in data["seen"].items()},
        tree=_frontier(data["tree"]),
        trees={int(k): _frontier(v) for k, v in data["trees"].items()},
        state_events=[tuple(row) for row in data["state_events"]],
    )


def _encode(result: RangeResult) -> dict[str, Any]:
    failure = result.failure
    return {
        "lo": result.lo,
        "count": result.count,
        "failure": [failure.seq, failure.event_type, failure.problem] if failure else None,
        "first_prev_hash": result.first_prev_hash,
        "expected_seq": result.expected_seq,
        "last_hash": result.last_hash,
        "seen": result.seen,
        "tree": [result.tree.size, result.tree.encode()],
        "trees": {k: [v.size, v.encode()] for k, v in result.trees.items()},
        "state_events": result.state_events,
    }


def _main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    pieces = scan_range(
        request["backend"],
        request["dsn"],
        request["pg_schema"],
        request["lo"],
        request["hi"],
        set(request["wanted"]),
        request["keep_state"],
    )
    json.dump([_encode(piece) for piece in pieces], sys.stdout)


if __name__ == "__main__":
    _main()
