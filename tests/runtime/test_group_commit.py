"""The ledger writer on PostgreSQL takes its batch once it holds the ledger head: decisions
that arrive while another writer (a worker or replica on the same store) commits join one
transaction instead of waiting for one commit each."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from caracal.core.ledger import NewEvent
from caracal.services.facade import Caracal
from caracal.services.group_commit import LedgerBatcher
from caracal.services.ledger_reads import LedgerFilter
from caracal.store import ledger_rows
from tests.runtime.test_authorize import make_workspace

pytestmark = pytest.mark.postgres


def test_decisions_queued_behind_another_writer_share_one_commit(
    home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARACAL_STORE_URL", pg_url)
    make_workspace("demo")
    with Caracal.open("demo") as app, Caracal.open("demo") as other:
        batcher = LedgerBatcher(app)
        batcher.start()
        settled: list[tuple[int | None, BaseException | None]] = []
        done = threading.Event()

        def note(seq: int | None, error: BaseException | None) -> None:
            settled.append((seq, error))
            if len(settled) == 10:
                done.set()

        holding, release = threading.Event(), threading.Event()

        def hold_the_head() -> None:  # another writer, in the middle of its commit
            def work(conn: object) -> None:
                ledger_rows.lock_head(conn)  # type: ignore[arg-type]
                holding.set()
                release.wait(10)

            other.store.write(work)

        writer = threading.Thread(target=hold_the_head)
        writer.start()
        assert holding.wait(10)
        before = app.ledger.count(LedgerFilter(types=["validation."]))
        events = [NewEvent("validation.allowed", {"n": n}) for n in range(10)]
        batcher.submit(events[0], note)
        time.sleep(0.3)  # the writer took the first decision and waits for the head
        for event in events[1:]:
            batcher.submit(event, note)
        release.set()
        writer.join(10)
        assert done.wait(10), settled
        batcher.close()
        assert [error for _, error in settled] == [None] * 10
        seqs = [seq for seq, _ in settled]
        assert seqs == sorted(seqs) and seqs[-1] - seqs[0] == 9  # type: ignore[operator]
        assert batcher.batches == 1, f"{batcher.batches} commits for 10 queued decisions"
        assert app.ledger.count(LedgerFilter(types=["validation."])) == before + 10
        assert app.ledger.verify().ok
