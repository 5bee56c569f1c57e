"""For the progress tests: a workspace big enough that its operations take a few seconds,
and watching a progress bar move."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from caracal.core.progress import Progress
from caracal.services.facade import Caracal
from tests.flow.conftest import until

EVENTS = 120_000


def grow(name: str = "demo", events: int = EVENTS) -> None:
    """`events` more validation events in the workspace's ledger (10,000 per transaction)."""
    from bench.authority import validation_events

    batch = validation_events(10_000)
    with Caracal.open(name) as app:
        for _ in range(events // 10_000):
            app.store.write(lambda conn: app.ledger.record(conn, *batch))


async def watch_moves(pilot: Any, selector: str, moves: int = 2, timeout: float = 60.0) -> list:
    """Wait until the bar at `selector` has shown `moves` different positions above 0."""
    seen: list[float] = []

    def moved() -> bool:
        bar = pilot.app.screen.query_one(selector)
        if bar.display and bar.progress > 0 and (not seen or bar.progress != seen[-1]):
            seen.append(bar.progress)
        return len(seen) >= moves

    await until(pilot, moved, timeout=timeout, what=f"{selector} to move {moves} times")
    return seen


async def stop_with_esc(pilot: Any, question: str) -> None:
    """esc, the question, yes."""
    from tests.flow.conftest import screen_name

    app = pilot.app
    await pilot.press("escape")
    await until(pilot, lambda: screen_name(app) == "ConfirmModal", what="the stop question")
    assert str(app.screen.query_one("#question").render()) == question
    await pilot.press("y")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> None:
    """A person is slower than the machine: an operation that can be stopped pauses (up to 30
    s) once it has shown progress for half a second, until the stop is asked, so esc always
    arrives while it runs, however busy the machine is."""
    real = Progress.__call__
    started: dict[int, float] = {}
    reports: dict[int, int] = defaultdict(int)

    def call(
        self: Progress, phase: str, done: int, total: int | None = None, unit: str = "rows"
    ) -> None:
        real(self, phase, done, total, unit)
        if self.cancel is None:
            return
        key = id(self)
        started.setdefault(key, time.monotonic())
        reports[key] += 1
        elapsed = time.monotonic() - started[key]
        if reports[key] >= 4 and elapsed >= 0.5:
            self.cancel.wait(30)
        elif elapsed < 0.5:
            # A quiet machine may walk the whole thing in less time than the bar takes to
            # redraw twice: the first half second goes at a person's pace.
            time.sleep(0.05)

    monkeypatch.setattr(Progress, "__call__", call)
