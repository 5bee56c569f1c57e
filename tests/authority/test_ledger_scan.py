"""Walking a ledger range read in batches and in pieces (what `ledger verify` does on large
ledgers): every altered event is still reported with its sequence number, and the pieces'
trees join into the tree over the whole ledger."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caracal.core.ledger import GENESIS_HASH, NewEvent, Row, seal
from caracal.core.merkle import Frontier, root_of
from caracal.services.ledger_verify import split_point
from caracal.store import ledger_scan

EVENTS = 3_500  # more than three SQLite batches


def _events(count: int) -> list[NewEvent]:
    """Decisions over a few mandates (as a real ledger: values repeat), some state events."""
    return [
        NewEvent(
            "mandate.revoked" if i % 97 == 0 else "validation.allowed",
            {"n": i, "token_sha256": f"{i:016x}"},
            principal_id=f"pr_{i % 7}",
            mandate_id=f"mnd_{i % 13}",
            reason_code="ALLOWED",
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return seal(_events(EVENTS), first_seq=1, prev_hash=GENESIS_HASH, ts_us=1_700_000, actor="a")


def _store(path: Path, rows: list[Row]) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE ledger_events (seq BIGINT NOT NULL PRIMARY KEY, ts BIGINT NOT NULL, "
        "type VARCHAR(48) NOT NULL, actor VARCHAR(128), principal_id VARCHAR(40), "
        "mandate_id VARCHAR(40), reason_code VARCHAR(48), payload TEXT NOT NULL, "
        "prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL)"
    )
    db.executemany(f"INSERT INTO ledger_events VALUES ({', '.join('?' * 10)})", rows)
    db.commit()
    return db


def _walk_in_two(db: sqlite3.Connection, size: int) -> ledger_scan.RangeResult:
    """What `ledger verify` does on a large ledger, in one process: the first range, then the
    second in aligned pieces, joined in order."""
    mid = split_point(size)
    first = ledger_scan.walk_cursor(
        db.cursor(), "?", 1, mid, set(), keep_state=True, batch=ledger_scan.SQLITE_BATCH
    )
    pieces = ledger_scan.walk_pieces(
        db.cursor(),
        "?",
        mid + 1,
        size,
        set(),
        keep_state=True,
        cuts=ledger_scan.aligned_cuts(mid + 1, size),
        batch=ledger_scan.SQLITE_BATCH,
    )
    joined = first
    for piece in pieces:
        joined = ledger_scan.join(joined, piece)
    return joined


def _tamper(db: sqlite3.Connection, seq: int, column: str, value: Any) -> None:
    db.execute(f"UPDATE ledger_events SET {column} = ? WHERE seq = ?", (value, seq))
    db.commit()


def test_an_intact_ledger_read_in_batches_and_pieces_gives_the_whole_tree(
    tmp_path: Path, rows: list[Row]
) -> None:
    db = _store(tmp_path / "ledger.db", rows)
    walk = _walk_in_two(db, EVENTS)
    assert walk.failure is None
    assert walk.count == EVENTS and walk.expected_seq == EVENTS + 1
    assert walk.last_hash == rows[-1][9]
    assert walk.tree.root() == root_of(bytes.fromhex(row[9]) for row in rows)
    assert [e[0] for e in walk.state_events] == [r[0] for r in rows if r[2] == "mandate.revoked"]


@pytest.mark.parametrize(
    ("seq", "column", "value"),
    [
        (EVENTS, "reason_code", "DENIED"),  # the newest event
        (1_500, "payload", '{"n":1499,"token_sha256":"00000000000005dd"}'),  # mid-batch
        (1_500, "mandate_id", "mnd_5"),  # a value another row has: the memo must not hide it
        (1_001, "actor", None),  # the first row of a batch
        (1_000, "prev_hash", "0" * 64),  # the last row of a batch
        (split_point(EVENTS) + 1, "ts", 1_700_001),  # the first event of the second range
        (2_048, "type", "validation.denied"),  # the last event of a piece
        (2_049, "hash", "f" * 64),  # the first event of the next piece
    ],
)
def test_an_altered_event_is_reported_with_its_sequence_number(
    tmp_path: Path, rows: list[Row], seq: int, column: str, value: Any
) -> None:
    db = _store(tmp_path / "ledger.db", rows)
    _tamper(db, seq, column, value)
    walk = _walk_in_two(db, EVENTS)
    assert walk.failure is not None and walk.failure.seq == seq, walk.failure
    assert walk.count == seq - 1


def test_a_value_stored_as_a_blob_is_reported_even_when_its_text_is_known(
    tmp_path: Path, rows: list[Row]
) -> None:
    db = _store(tmp_path / "ledger.db", rows)
    _tamper(db, 1_234, "principal_id", b"pr_1")  # pr_1 is the text of many rows before it
    walk = ledger_scan.walk_cursor(db.cursor(), "?", 1, None, set(), batch=100)
    assert walk.failure is not None and walk.failure.seq == 1_234
    assert "altered" in walk.failure.problem


def test_an_event_missing_at_a_cut_is_reported_as_missing(tmp_path: Path, rows: list[Row]) -> None:
    db = _store(tmp_path / "ledger.db", rows)
    db.execute("DELETE FROM ledger_events WHERE seq = 2049")
    db.commit()
    walk = _walk_in_two(db, EVENTS)
    assert walk.failure is not None and walk.failure.seq == 2_049
    assert walk.failure.problem.startswith("missing")


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=2, max_value=5_000), data=st.data())
def test_pieces_from_aligned_cuts_merge_into_the_tree_of_all_leaves(
    size: int, data: st.DataObject
) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    mid = data.draw(st.integers(min_value=1, max_value=size - 1), label="mid")
    tree = Frontier()
    tree.extend(leaves[:mid])
    start = mid
    for end in [*ledger_scan.aligned_cuts(mid + 1, size), size]:
        piece = Frontier()
        piece.extend(leaves[start:end])
        tree = tree.merged(piece)
        start = end
    assert tree.size == size and tree.root() == root_of(leaves)


def test_the_split_leaves_work_on_both_sides() -> None:
    for size in (2, 3, 13, 200_000, 1_000_101, 1 << 20):
        assert 1 <= split_point(size) < size
    assert abs(split_point(1_000_000) - 500_000) < 10_000
