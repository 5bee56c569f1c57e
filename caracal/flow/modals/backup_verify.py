"""Verify an archive: check every hash, count and the ledger, with a progress bar.

A locked archive asks for its key first: a problem (a wrong key included) is shown here so
the key can be typed again. An unlocked one starts at once. A clean report (or any report
of an unlocked archive) closes the dialog and is shown on the Backups screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static

from caracal.flow.modals.operation import OperationModal


class VerifyArchiveModal(OperationModal[Any]):
    TITLE = "Verify an archive"
    SUBMIT = "Verify"
    AUTO_FOCUS = "#lock-key"
    CANCEL_QUESTION = "Cancel the verification? Nothing will be written."
    CANCEL_DETAILS = "The archive stays as it is, not verified."

    def __init__(self, archive: dict[str, Any]) -> None:
        super().__init__()
        self.archive = archive

    @property
    def locked(self) -> bool:
        return bool(self.archive["locked"])

    def compose_fields(self) -> ComposeResult:
        if self.locked:
            yield Static(f"{self.archive['file']} is locked.", classes="hint", markup=False)
            yield self.field("Lock key")
            yield Input("", password=True, id="lock-key")
        else:
            yield Static(f"Verifying {self.archive['file']}.", classes="hint", markup=False)

    def on_mount(self) -> None:
        super().on_mount()
        if not self.locked:
            self.call_after_refresh(self.action_submit)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.prevent_default()  # submit, rather than FormModal's move to the next field
        self.action_submit()

    def lock_key(self, widget_id: str) -> str:
        """Lock keys are taken exactly as typed (spaces included)."""
        return self.query_one(f"#{widget_id}", Input).value

    def prepare(self) -> Callable[[], Any]:
        from caracal.services.backup.archive_check import verify_archive

        key = self.lock_key("lock-key") if self.locked else None
        if self.locked and not key:
            raise ValueError("Type the archive's lock key.")
        path, progress = Path(self.archive["path"]), self.progress()
        return lambda: verify_archive(path, lock_key=key, progress=progress)

    def action_submit(self) -> None:
        """Like OperationModal's, but a locked archive's report with a problem keeps the
        dialog open (the key may be wrong)."""
        if self.running:
            return
        try:
            work = self.prepare()
        except ValueError as exc:
            self._stop = None
            self.show_error(str(exc))
            return

        def checked(report: Any) -> None:
            if report.ok or not self.locked:
                self.flow.unsaved = False
                self.dismiss(report)
            else:
                self.show_error(f"Not verified: {report.problem}")

        self.start(work, checked, "verify archive")
