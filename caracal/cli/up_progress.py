"""The display `caracal up` shows on a terminal while it works: the phase, the image build's
step, which service it waits for, how long it has waited and the timeout. On stderr, only at
a terminal (see `progress.wanted`); the launcher's own lines print above it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from caracal.cli.common import note

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

Say = Callable[[str], None]


class UpDisplay:
    """The launcher's `UpWatcher`, drawing one line: phase, bar (when the phase has a size), detail, time."""

    def __init__(self, display: Progress, task: TaskID) -> None:
        self.display = display
        self.task = task

    def phase(self, name: str) -> None:
        self.display.update(self.task, description=name, completed=0, total=None, detail="")

    def step(self, done: int, total: int | None, text: str) -> None:
        count = f"step {done}/{total}" if total else f"{done} done"
        short = text if len(text) <= 60 else text[:59] + "…"
        self.display.update(
            self.task, completed=done, total=total, detail=f"{count}: {short}" if short else count
        )

    def waiting(self, service: str, waited: float, timeout: float) -> None:
        self.display.update(
            self.task,
            description=f"waiting for {service} to be healthy",
            completed=min(waited, timeout),
            total=timeout,
            detail=f"waited {waited:.0f}s of {timeout:.0f}s",
        )


@contextmanager
def up_display(enabled: bool) -> Iterator[tuple[UpDisplay | None, Say]]:
    """Yields the watcher to hand the launcher (None: nothing to show) and the `say` to print
    its lines with."""
    if not enabled:
        yield None, note
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    display = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        refresh_per_second=10,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with display:
        task = display.add_task("starting", total=None, detail="")

        def say(text: str) -> None:
            display.console.print(text, markup=False, highlight=False)

        yield UpDisplay(display, task), say
