"""Group commit for decision events: many concurrent decisions share one ledger transaction.

A decision is acknowledged only after the transaction holding its event has committed, so a
crash can lose a decision nobody was told about, never one that was answered."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from caracal.core.ledger import NewEvent
from caracal.services.facade import Caracal
from caracal.store import ledger_rows

log = logging.getLogger(__name__)
Done = Callable[[int | None, BaseException | None], None]
_STOP = object()


class LedgerBatcher:
    """Group commit on a thread of its own, for stores whose commits wait on the network."""

    inline = False

    def __init__(self, app: Caracal, max_batch: int = 1000) -> None:
        self.app = app
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[NewEvent, Done] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="caracal-ledger", daemon=True)
        self.submitted = 0  # written by submitters only
        self.settled = 0  # written by the ledger thread only
        self.batches = 0
        self.events = 0
        self.last_commit_seconds = 0.0
        self._started = False
        self._stopping = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    @property
    def alive(self) -> bool:
        """The writer thread runs (a decision submitted now will be committed)."""
        return self._started and self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Decisions submitted and not yet committed: the ledger lag."""
        return max(0, self.submitted - self.settled)

    def submit(self, event: NewEvent, done: Done) -> None:
        self.submitted += 1
        self._queue.put((event, done))

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        self._stopping = False
        while not self._stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[tuple[NewEvent, Done]] = [first]  # type: ignore[list-item]
            self._commit(batch)

    def _drain(self, batch: list[tuple[NewEvent, Done]]) -> None:
        """Add what is queued to `batch`, up to `max_batch`."""
        while len(batch) < self.max_batch and not self._stopping:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                self._stopping = True
                return
            batch.append(item)  # type: ignore[arg-type]

    def _commit(self, batch: list[tuple[NewEvent, Done]]) -> None:
        # The batch is taken once this transaction holds the ledger head: while another
        # process (a worker or replica on the same store) commits under the head lock, the
        # decisions arriving here join this batch instead of waiting for the next one. Every
        # writer of a workspace serialises on that lock and its commit, so the decisions per
        # commit are what bounds the rate.
        commit_batch(self, batch, before=self._drain)


class InlineBatcher:
    """Group commit without a thread, for the embedded store: decisions made while the event
    loop handles one burst of requests are committed together by one callback scheduled after
    them. SQLite commits in microseconds, so blocking the loop for it costs less than handing
    every decision to another thread (and fighting it for the interpreter lock)."""

    inline = True

    def __init__(self, app: Caracal, loop: Any, max_batch: int = 1000) -> None:
        self.app = app
        self.loop = loop
        self.max_batch = max_batch
        self._pending: list[tuple[NewEvent, Done]] = []
        self._scheduled = False
        self.submitted = 0
        self.settled = 0
        self.batches = 0
        self.events = 0
        self.last_commit_seconds = 0.0

    @property
    def pending(self) -> int:
        return max(0, self.submitted - self.settled)

    # Commits run on the serving loop itself: alive as long as the server answers.
    alive = True

    def start(self) -> None:
        return None

    def submit(self, event: NewEvent, done: Done) -> None:
        self.submitted += 1
        self._pending.append((event, done))
        if len(self._pending) >= self.max_batch:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            # One more loop iteration lets requests already read from their sockets join.
            self.loop.call_soon(self.loop.call_soon, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        commit_batch(self, batch)

    def close(self, timeout: float = 10.0) -> None:
        self.flush()


def commit_batch(
    batcher: LedgerBatcher | InlineBatcher,
    batch: list[tuple[NewEvent, Done]],
    before: Callable[[list[tuple[NewEvent, Done]]], None] | None = None,
) -> None:
    """One transaction for the whole batch; then every decision learns its sequence number,
    or, if the commit failed, the error (and is not given). `before`, when given, may add to
    the batch once the transaction holds the ledger head lock (it runs again if the
    transaction is retried; what it added stays in the batch)."""
    started = time.perf_counter()
    app = batcher.app

    def work(conn: Any) -> int:
        if before is not None:
            ledger_rows.lock_head(conn)
            before(batch)
        return app.ledger.record(conn, *(event for event, _ in batch))

    try:
        last = app.store.write(work)
    except BaseException as exc:
        log.error("could not record %d decision(s): %s", len(batch), exc)
        for _, done in batch:
            done(None, exc)
    else:
        first = last - len(batch) + 1
        for offset, (_, done) in enumerate(batch):
            done(first + offset, None)
    finally:
        batcher.settled += len(batch)
        batcher.batches += 1
        batcher.events += len(batch)
        batcher.last_commit_seconds = time.perf_counter() - started
