"""What one upstream MCP server may cost the gate: a share of calls in flight and waiting, a
deadline per call, and a breaker that refuses calls at once after repeated failures (so a
dead or hostile server answers fast, and never holds what the other servers need).

The memory budget of one call in flight is its answer as received (`max_reply_bytes`, 4 MiB
by default; `max_tools_bytes` for all pages of a listing) plus what that parses into; answers
over PARSE_OFF_LOOP_BYTES are parsed in a thread, at most BIG_PARSES at once across the
process, so that decisions on the event loop keep their latency."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from caracal.core.canonical import json_containers

if TYPE_CHECKING:
    from caracal.home.config_model import McpUpstreamSettings

PARSE_OFF_LOOP_BYTES = 256 * 1024
BIG_PARSES = 2


class UpstreamError(Exception):
    """The upstream could not be reached, or answered something that is not MCP."""


class ServerBusy(UpstreamError):
    """The server's share of calls in flight and waiting is used up: refused at once."""


class ServerGuard:
    """One server's share of calls and its breaker; lives on the serving event loop."""

    def __init__(self, name: str, settings: McpUpstreamSettings) -> None:
        self.name = name
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.concurrent_calls)
        self.waiting = 0
        self.failures = 0
        self.open_until = 0.0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """A slot for one call (waiting for one if the queue has room); refused at once when
        the breaker is open or the queue is full."""
        left = self.open_until - time.monotonic()
        if left > 0:
            raise ServerBusy(
                f"it failed {self.settings.failures_to_open} times in a row; calls are refused "
                f"for {left:.0f} s more"
            )
        if self._slots.locked() and self.waiting >= self.settings.queued_calls:
            raise ServerBusy(
                f"{self.settings.concurrent_calls} calls are in flight and "
                f"{self.waiting} waiting; retry shortly"
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.settings.failures_to_open:
            self.open_until = time.monotonic() + self.settings.open_seconds
            # After the pause one call is tried; one more failure opens the breaker again.
            self.failures = self.settings.failures_to_open - 1


class ReplyBudget:
    """Bytes one call (or one listing, all pages together) may still receive, and how many
    JSON objects and arrays one answer may hold."""

    def __init__(self, limit: int, what: str = "answer", containers: int = 100_000) -> None:
        self.limit = limit
        self.left = limit
        self.what = what
        self.containers = containers

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise UpstreamError(f"the upstream's {self.what} is over {self.limit} bytes")


def check_containers(data: bytes | str, limit: int) -> None:
    """Refuse, before parsing, an answer holding more than `limit` JSON objects and arrays:
    3 MB of `{}` would otherwise take hundreds of megabytes."""
    raw = data.encode() if isinstance(data, str) else data
    if json_containers(raw, limit) > limit:
        raise UpstreamError(f"the upstream's answer holds over {limit} JSON objects and arrays")
