"""WAL checkpoints on a thread of their own, for a process that commits on its event loop.

SQLite copies the write-ahead log back into the database (a checkpoint) inside the commit that
crosses `wal_autocheckpoint` pages: tens of milliseconds, with an fsync, during which a server
that commits on its event loop answers nobody (it was the runtime's whole p99). Here the
process's own commits leave that to a thread that runs a PASSIVE checkpoint every fraction of
a second on a connection of its own (the sqlite3 module releases the interpreter lock while it
works); PASSIVE never blocks a writer or a reader. The commit-time checkpoint stays as a
fallback, at a much larger size, should the thread fall behind."""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 0.2
# About 400 MB of log before a commit checkpoints by itself (the thread normally keeps it small).
FALLBACK_PAGES = 100_000


class WalCheckpointer:
    def __init__(self, path: str, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="caracal-checkpoint", daemon=True)

    def start(self, engine: Engine) -> None:
        """Raise the commit-time threshold of `engine`'s connections (the pooled ones are
        reopened), then start checkpointing."""

        @event.listens_for(engine, "connect")
        def _defer(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")

        engine.dispose()
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None, timeout=1)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error as exc:  # the next round tries again
                    log.debug("WAL checkpoint failed: %s", exc)
        finally:
            if conn is not None:
                conn.close()
