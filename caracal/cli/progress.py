"""A progress display on stderr for the commands a user waits on (backups, ledger verify and
export, bulk issuance): phase, count or bytes, rate and time left. Only at a terminal: never
with `--json`, with `--quiet`, or when stderr is a pipe or a file, so scripts see exactly
what they saw. ctrl+c during such a command exits 130 with one line saying what was kept."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from caracal.cli.common import Interrupted, interruptible
from caracal.core.progress import SILENT, Progress, Step

if TYPE_CHECKING:
    from rich.progress import Task
    from rich.text import Text

# done, total (None while unknown)
Report = Callable[[int, int | None], None]

__all__ = ["Interrupted", "interruptible", "progress", "steps", "wanted"]


def _nothing(done: int, total: int | None) -> None:
    return None


def wanted(ctx: typer.Context, as_json: bool) -> bool:
    """Whether this command may show a display: a terminal, no `--json`, no `--quiet`."""
    root = ctx.find_root().obj
    quiet = bool(root.get("quiet")) if isinstance(root, dict) else False
    return not as_json and not quiet and sys.stderr.isatty()


@contextmanager
def progress(label: str, unit: str, *, enabled: bool) -> Iterator[Report]:
    """Yields `report(done, total)`; the display goes away when the block ends."""
    if not enabled:
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if not speed else f"{speed:,.0f} {unit}/s")

    # The bar takes what the counts leave: at 80 columns nothing wraps onto a second line.
    display = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TextColumn(unit, table_column=Column(no_wrap=True)),
        Rate(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        refresh_per_second=10,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with display:
        task = display.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            display.update(task, completed=done, total=total)

        yield report


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@contextmanager
def steps(*, enabled: bool) -> Iterator[Progress]:
    """Yields a `Progress` for a service call: each phase (a table, the archive's bytes, the
    ledger's events) in turn, with its count or size, rate and time left."""
    if not enabled:
        yield SILENT
        return
    from rich.console import Console
    from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Display
    from rich.table import Column
    from rich.text import Text

    def amount(task: Task, value: float | None) -> str:
        if value is None:
            return "?"
        return _size(value) if task.fields.get("unit") == "bytes" else f"{value:.0f}"

    class Count(ProgressColumn):
        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", "")
            shown = "" if unit == "bytes" else f" {unit}"
            return Text(
                f"{amount(task, task.completed)}/{amount(task, task.total)}{shown}", no_wrap=True
            )

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if not speed:
                return Text("")
            unit = task.fields.get("unit", "")
            rate = f"{_size(speed)}/s" if unit == "bytes" else f"{speed:,.0f} {unit}/s"
            return Text(rate, no_wrap=True)

    display = Display(
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        Count(table_column=Column(no_wrap=True)),
        Rate(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        refresh_per_second=10,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with display:
        task = display.add_task("Preparing", total=None, unit="")
        phase = ""

        def report(step: Step) -> None:
            nonlocal phase
            if step.phase != phase:
                phase = step.phase
                display.reset(task, description=phase, total=step.total, unit=step.unit)
            display.update(task, completed=step.done, total=step.total)

        yield Progress(report)
