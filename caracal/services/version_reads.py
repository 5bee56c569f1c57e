"""Shared, off-loop reads of the store's authority version, for a runtime replica on a
networked store that does not follow the Redis change feed.

Every decision must see the authority version as of a moment after its request arrived (a
revocation committed before the request is honoured). Reading it on the event loop blocks
every other request for the round trips of a pooled read transaction. Here a decision awaits
one read that *started after it asked*: a read runs on a thread of its own, over a
connection kept for it, and every decision that asks while a read is in flight waits for the
next one, which starts as soon as that read ends. Under load one read serves every decision
of its window, and the loop goes on serving requests meanwhile."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from caracal.services.facade import Caracal
from caracal.store.meta import PostgresAuthorityVersion


class VersionReads:
    def __init__(self, app: Caracal) -> None:
        self._reader = PostgresAuthorityVersion(app.store.engine)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="caracal-version"
        )
        self._next: asyncio.Future[str] | None = None
        self._reading = False
        self.reads = 0

    async def fresh(self) -> str:
        """The authority version, read after this call began (raises what the read raised)."""
        waiting = self._next
        if waiting is None:
            waiting = self._next = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieved)
            if not self._reading:
                self._start()
        # Shielded: a request that goes away must not cancel the read others wait for.
        return await asyncio.shield(waiting)

    def _start(self) -> None:
        waiting, self._next = self._next, None
        assert waiting is not None
        self._reading = True
        asyncio.get_running_loop().create_task(self._read(waiting))

    async def _read(self, waiting: asyncio.Future[str]) -> None:
        loop = asyncio.get_running_loop()
        try:
            version = await loop.run_in_executor(self._executor, self._reader.read)
        except Exception as exc:
            if not waiting.done():
                waiting.set_exception(exc)
        else:
            self.reads += 1
            if not waiting.done():
                waiting.set_result(version)
        finally:
            self._reading = False
            if self._next is not None:
                self._start()

    def close(self) -> None:
        self._executor.submit(self._reader.close).result(timeout=10)
        self._executor.shutdown(wait=True)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Every waiter may have gone: the outcome is still looked at (no 'never retrieved')."""
    if not future.cancelled():
        future.exception()
