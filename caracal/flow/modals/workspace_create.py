"""Create a workspace: a name (checked as it is typed), an optional PostgreSQL store, and
whether to switch to it at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Static

from caracal.flow.modals.form import FormModal


def name_problem(name: str) -> str:
    """The reason `name` is not a valid workspace name, or "" when it is."""
    from caracal.core.errors import ValidationError
    from caracal.core.names import check_workspace_name

    try:
        check_workspace_name(name)
    except ValidationError as exc:
        return exc.message
    return ""


class CreateWorkspaceModal(FormModal[Any]):
    TITLE = "Create a workspace"
    SUBMIT = "Create"
    AUTO_FOCUS = "#name"
    DEFAULT_CSS = """
    CreateWorkspaceModal #name-problem { color: $error; }
    """

    def compose_fields(self) -> ComposeResult:
        yield self.field("Name (lowercase letters, digits, '-' or '_')")
        yield Input("", placeholder="e.g. staging", id="name")
        yield Static("", id="name-problem")
        yield self.field("Store (empty: an embedded SQLite file in the workspace folder)")
        yield Input("", placeholder="optional: postgresql://user@host/database", id="store-url")
        yield Checkbox("Switch to it after creating", id="switch")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "name":
            name = event.value.strip()
            self.query_one("#name-problem", Static).update(name_problem(name) if name else "")

    def prepare(self) -> Callable[[], Any]:
        name = self.value("name")
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        store_url = self.value("store-url") or None
        switch = self.query_one("#switch", Checkbox).value
        manager = self.flow.context.manager
        return lambda: (manager.create(name, store_url=store_url), switch)
