"""Write a backup of the whole workspace, optionally locked with a key typed twice.

A locked archive is encrypted and carries the workspace's secrets; an unlocked one omits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static

from caracal.flow.modals.operation import OperationModal


def lock_key_problem(key: str, repeated: str) -> str:
    """Why this pair of lock key entries cannot be used, or "" (both empty: no lock)."""
    from caracal.core.errors import ValidationError
    from caracal.services.backup.envelope import check_lock_key

    if not key and not repeated:
        return ""
    try:
        check_lock_key(key)
    except ValidationError as exc:
        return exc.message
    return "" if key == repeated else "The two lock keys differ; type the same key twice."


class CreateBackupModal(OperationModal[Any]):
    TITLE = "Create a backup"
    SUBMIT = "Write backup"
    CANCEL_QUESTION = "Cancel the backup? Nothing will be written."
    AUTO_FOCUS = "#lock-key"
    DEFAULT_CSS = """
    CreateBackupModal #key-problem { color: $error; }
    """

    def compose_fields(self) -> ComposeResult:
        yield Static(
            "The archive goes to this workspace's backups folder. Leave the lock key empty for "
            "an unlocked archive (secrets are left out). A locked archive is encrypted and "
            "includes the secrets; without its key it cannot be restored.",
            classes="hint",
        )
        yield self.field("Lock key (optional, at least 12 characters)")
        yield Input("", password=True, id="lock-key")
        yield self.field("Lock key again")
        yield Input("", password=True, id="lock-key-again")
        yield Static("", id="key-problem")

    def on_input_changed(self, event: Input.Changed) -> None:
        key, repeated = self.lock_key("lock-key"), self.lock_key("lock-key-again")
        # Complain about a mismatch only once the second entry is as long as the first.
        problem = lock_key_problem(key, repeated) if len(repeated) >= len(key) else ""
        self.query_one("#key-problem", Static).update(problem)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "lock-key-again":
            event.prevent_default()  # submit, rather than FormModal's move to the next field
            self.action_submit()

    def lock_key(self, widget_id: str) -> str:
        """Lock keys are taken exactly as typed (spaces included)."""
        return self.query_one(f"#{widget_id}", Input).value

    def prepare(self) -> Callable[[], Any]:
        key, repeated = self.lock_key("lock-key"), self.lock_key("lock-key-again")
        problem = lock_key_problem(key, repeated)
        if problem:
            # Said once, on the form's error line, not again under the fields.
            self.query_one("#key-problem", Static).update("")
            raise ValueError(problem)
        caracal, progress = self.flow.context.caracal, self.progress()
        return lambda: caracal.backups.create(lock_key=key or None, progress=progress)
