"""Verify a locked archive: ask for its key, then check every hash, count and the ledger.

A problem (a wrong key included) is shown here so the key can be typed again; a clean report
closes the dialog and is shown on the Backups screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static

from caracal.flow.modals.form import FormModal


class VerifyArchiveModal(FormModal[Any]):
    TITLE = "Verify a locked archive"
    SUBMIT = "Verify"
    AUTO_FOCUS = "#lock-key"

    def __init__(self, archive: dict[str, Any]) -> None:
        super().__init__()
        self.archive = archive

    def compose_fields(self) -> ComposeResult:
        yield Static(f"{self.archive['file']} is locked.", classes="hint", markup=False)
        yield self.field("Lock key")
        yield Input("", password=True, id="lock-key")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.prevent_default()  # submit, rather than FormModal's move to the next field
        self.action_submit()

    def lock_key(self, widget_id: str) -> str:
        """Lock keys are taken exactly as typed (spaces included)."""
        return self.query_one(f"#{widget_id}", Input).value

    def prepare(self) -> Callable[[], Any]:
        from caracal.services.backup.archive_check import verify_archive

        key = self.lock_key("lock-key")
        if not key:
            raise ValueError("Type the archive's lock key.")
        path = Path(self.archive["path"])
        return lambda: verify_archive(path, lock_key=key)

    def action_submit(self) -> None:
        """Like FormModal's, but a report with a problem keeps the dialog open."""
        from caracal.flow.tasks import run_in_background

        try:
            work = self.prepare()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.show_error("Verifying…")

        def checked(report: Any) -> None:
            if report.ok:
                self.flow.unsaved = False
                self.dismiss(report)
            else:
                self.show_error(f"Not verified: {report.problem}")

        run_in_background(
            self, work, done=checked, failed=self.show_error, description="verify archive"
        )
