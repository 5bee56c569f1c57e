"""A form whose work takes a while (a backup, a restore, an export): while it runs, the
dialog shows the phase and a progress bar, and esc asks whether to stop it. A stopped
operation leaves nothing half written; the dialog then closes with nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import ComposeResult
from textual.widgets import ProgressBar, Static

from caracal.core.progress import Progress, Step
from caracal.flow.modals.form import FormModal
from caracal.flow.tasks import run_in_background

T = TypeVar("T")
REPORT_EVERY = 0.1  # seconds between two updates of the bar (the work reports far more often)


def step_text(step: Step) -> str:
    def amount(value: int) -> str:
        if step.unit != "bytes":
            return f"{value:,}"
        return f"{value / 1024 / 1024:.1f} MiB"

    of = f" of {amount(step.total)}" if step.total is not None else ""
    unit = "" if step.unit == "bytes" else f" {step.unit}"
    return f"{step.phase}: {amount(step.done)}{of}{unit}"


class OperationModal(FormModal[T]):
    CANCEL_QUESTION = "Cancel the operation? Nothing will be written."
    CANCEL_DETAILS = "It stops at the next step and removes what it had started."
    CANCELLED_NOTICE = "Cancelled; nothing was written."
    DEFAULT_CSS = """
    OperationModal #op-phase { color: $text-muted; height: auto; }
    OperationModal #op-progress { width: 100%; }
    """

    _stop: threading.Event | None = None

    def compose_outcome(self) -> ComposeResult:
        """The phase and the bar sit under the fields, in view however far they scroll."""
        yield from self.compose_progress()

    def compose_progress(self) -> ComposeResult:
        phase = Static("", id="op-phase", markup=False)
        bar = ProgressBar(total=None, show_eta=True, id="op-progress")
        phase.display = bar.display = False
        yield phase
        yield bar

    @property
    def running(self) -> bool:
        return self._stop is not None

    def progress(self) -> Progress:
        """A fresh `Progress` for the work about to start: it updates this dialog's bar from
        the worker thread, at most every REPORT_EVERY, and stops once esc was confirmed."""
        stop = self._stop = threading.Event()
        at, phase = [0.0], [""]

        def report(step: Step) -> None:
            now = time.monotonic()
            if step.phase == phase[0] and now - at[0] < REPORT_EVERY:
                return
            at[0], phase[0] = now, step.phase
            self.app.call_from_thread(self.show_step, step)

        return Progress(report, stop)

    def show_step(self, step: Step) -> None:
        phase = self.query_one("#op-phase", Static)
        bar = self.query_one("#op-progress", ProgressBar)
        phase.display = bar.display = True
        phase.update(step_text(step))
        bar.update(total=step.total, progress=step.done)

    def start(self, work: Callable[[], Any], done: Callable[[Any], None], description: str) -> None:
        """Run `work` (built with `self.progress()`) with the bar shown; `done` gets its
        result, a failure is shown in place, a stop closes the dialog."""
        self.show_error("")
        self.query_one("#op-phase", Static).update("Starting…")
        self.query_one("#op-phase", Static).display = True

        def finished(result: Any) -> None:
            self._finish()
            done(result)

        def failed(message: str) -> None:
            self._finish()
            self.show_error(message)

        def stopped() -> None:
            self._finish()
            self.flow.unsaved = False
            self.app.notify(self.CANCELLED_NOTICE)
            self.dismiss(None)

        run_in_background(
            self, work, done=finished, failed=failed, cancelled=stopped, description=description
        )

    def _finish(self) -> None:
        # A question still open (esc pressed just before the end) goes with the operation.
        while self.app.screen is not self and self in self.app.screen_stack:
            self.app.pop_screen()
        self._stop = None
        self._saving = False
        self.query_one("#op-phase", Static).display = False
        self.query_one("#op-progress", ProgressBar).display = False

    def action_submit(self) -> None:
        if self.running:
            return
        try:
            work = self.prepare()
        except ValueError as exc:
            self._stop = None
            self.show_error(str(exc))
            return
        self._saving = True

        def done(result: Any) -> None:
            self.flow.unsaved = False
            self.dismiss(result)

        self.start(work, done, self.TITLE)

    def action_cancel(self) -> None:
        if not self.running:
            super().action_cancel()
            return
        from caracal.flow.modals.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if yes and self._stop is not None:
                self._stop.set()
                self.query_one("#op-phase", Static).update("Stopping…")

        self.app.push_screen(
            ConfirmModal(self.CANCEL_QUESTION, self.CANCEL_DETAILS, confirm_label="Stop"),
            answered,
        )
