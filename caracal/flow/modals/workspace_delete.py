"""Delete a workspace: say what goes, and ask for an optional lock key for the backup written
first (locked, the backup keeps the signing keys and provider credentials)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static

from caracal.flow.modals.backup_create import lock_key_problem
from caracal.flow.modals.form import FormModal
from caracal.flow.text import display_path


class DeleteWorkspaceModal(FormModal[Path | None]):
    TITLE = "Delete a workspace"
    SUBMIT = "Delete"
    AUTO_FOCUS = "#lock-key"
    DEFAULT_CSS = """
    DeleteWorkspaceModal #key-problem { color: $error; }
    DeleteWorkspaceModal #loss { color: $warning; }
    """

    def __init__(self, name: str, backups: Path) -> None:
        super().__init__()
        self.workspace = name
        self.backups = backups

    def compose_fields(self) -> ComposeResult:
        from caracal.services.workspaces import UNLOCKED_BACKUP_LOSES

        yield Static(
            f"Delete workspace {self.workspace}. A backup of the whole workspace is written to "
            f"{display_path(self.backups)} first; if that "
            "fails, nothing is deleted. Then its store, keys, logs and folder are removed. "
            "Restore it later from that backup (Backups screen).",
            classes="hint",
            markup=False,
        )
        yield Static(UNLOCKED_BACKUP_LOSES, id="loss", markup=False)
        yield self.field("Lock key for the backup (optional, at least 12 characters)")
        yield Input("", password=True, id="lock-key")
        yield self.field("Lock key again")
        yield Input("", password=True, id="lock-key-again")
        yield Static("", id="key-problem")

    def on_input_changed(self, event: Input.Changed) -> None:
        key, repeated = self.lock_key("lock-key"), self.lock_key("lock-key-again")
        problem = lock_key_problem(key, repeated) if len(repeated) >= len(key) else ""
        self.query_one("#key-problem", Static).update(problem)

    def lock_key(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value

    def prepare(self) -> Callable[[], Any]:
        key, repeated = self.lock_key("lock-key"), self.lock_key("lock-key-again")
        problem = lock_key_problem(key, repeated)
        if problem:
            raise ValueError(problem)
        manager, name = self.flow.context.manager, self.workspace
        return lambda: manager.delete(name, backup_first=True, lock_key=key or None)
