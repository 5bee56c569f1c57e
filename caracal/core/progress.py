"""Progress of long operations, and stopping them on request.

An operation (a backup, a restore, a ledger verify or export) reports each step as it goes:
the phase it is in, how far it got, out of how much, in what unit. The same call is where it
stops when asked: a front end sets the cancel flag, and the next report raises `Cancelled`
from inside the operation, which then cleans up as it does for any failure (nothing half
written). A terminal's ctrl+c needs no flag: it arrives as KeyboardInterrupt the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """The operator asked the operation to stop; it stopped without writing anything."""


@dataclass(frozen=True)
class Step:
    phase: str  # "Dumping ledger_events", "Writing the archive", ...
    done: int
    total: int | None  # None while unknown
    unit: str  # "rows", "bytes", "events"


class Progress:
    """What an operation calls at each step: reports it, and raises `Cancelled` once asked
    to stop. `Progress()` reports nowhere and never stops."""

    def __init__(
        self,
        report: Callable[[Step], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._report = report
        self.cancel = cancel

    def __call__(self, phase: str, done: int, total: int | None = None, unit: str = "rows") -> None:
        self.check()
        if self._report is not None:
            self._report(Step(phase, done, total, unit))

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("Stopped on request; nothing was written.")

    def counter(self, phase: str, total: int | None, unit: str = "rows") -> Callable[[int], None]:
        """A `report(done)` for one phase."""
        return lambda done: self(phase, done, total, unit)


SILENT = Progress()
