"""Restore an archive into a new workspace (asking for the lock key when it is locked).

The restore is complete and verified, or nothing is created; the screen then offers to
switch to the new workspace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static

from caracal.flow.modals.operation import OperationModal
from caracal.flow.modals.workspace_create import name_problem

ARCHIVE_SUFFIX = re.compile(r"-\d{8}T\d+Z\.tar\.gz(\.locked)?$")


def suggested_name(file: str) -> str:
    """`demo-20250101T120000000000Z.tar.gz` -> `demo-restored` (when that is a valid name)."""
    base = ARCHIVE_SUFFIX.sub("", file)
    candidate = f"{base}-restored" if base != file else ""
    return candidate if candidate and not name_problem(candidate) else ""


class RestoreArchiveModal(OperationModal[Any]):
    TITLE = "Restore into a new workspace"
    SUBMIT = "Restore"
    CANCEL_QUESTION = "Cancel the restore? Nothing will be written."
    CANCEL_DETAILS = (
        "No workspace is created; the archive and the other workspaces stay as they are."
    )
    AUTO_FOCUS = "#name"
    DEFAULT_CSS = """
    RestoreArchiveModal #name-problem { color: $error; }
    """

    def __init__(self, archive: dict[str, Any]) -> None:
        super().__init__()
        self.archive = archive

    def compose_fields(self) -> ComposeResult:
        locked = self.archive["locked"]
        yield Static(
            f"{self.archive['file']}{' (locked)' if locked else ''} becomes a new workspace; "
            "the archive's ledger is verified before anything is kept.",
            classes="hint",
            markup=False,
        )
        yield self.field("New workspace name")
        yield Input(suggested_name(self.archive["file"]), id="name")
        yield Static("", id="name-problem")
        if locked:
            yield self.field("Lock key")
            yield Input("", password=True, id="lock-key")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "name":
            name = event.value.strip()
            self.query_one("#name-problem", Static).update(name_problem(name) if name else "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "lock-key" or not self.archive["locked"]:
            event.prevent_default()  # submit, rather than FormModal's move to the next field
            self.action_submit()

    def lock_key(self, widget_id: str) -> str:
        """Lock keys are taken exactly as typed (spaces included)."""
        return self.query_one(f"#{widget_id}", Input).value

    def prepare(self) -> Callable[[], Any]:
        from caracal.services.backup.restore import restore

        name = self.value("name")
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        key = self.lock_key("lock-key") if self.archive["locked"] else None
        if self.archive["locked"] and not key:
            raise ValueError("This archive is locked: type its lock key.")
        manager, path = self.flow.context.manager, Path(self.archive["path"])
        progress = self.progress()
        return lambda: restore(manager, path, name, lock_key=key, progress=progress)
