"""A progress display on stderr for the commands a user waits on (ledger verify and export,
bulk issuance): phase, count, rate and time left. Only at a terminal: never with `--json`,
with `--quiet`, or when stderr is a pipe or a file, so scripts see exactly what they saw."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.progress import Task
    from rich.text import Text

# done, total (None while unknown)
Report = Callable[[int, int | None], None]


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
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if not speed else f"{speed:,.0f} {unit}/s")

    display = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        Rate(),
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
