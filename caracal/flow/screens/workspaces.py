"""Workspaces: the list (active one marked, with its store), create, switch and delete.

Switching moves the whole app: config, logs, store and Flow state follow the workspace, and
every screen reloads from the new store. Deleting writes a backup first (locked when the
operator gives a lock key, so it keeps the secrets); the active workspace
(or the one Flow has open) is never deleted here: the operator is told to switch first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.text import display_path
from caracal.flow.widgets.paged_table import Column, PagedTable, Row

COMMANDS = [
    ("Create a workspace", "create"),
    ("Switch to the selected workspace", "switch"),
    ("Delete the selected workspace", "delete"),
    ("Import a workspace from a backup file", "import_file"),
]


@dataclass
class WorkspacePages:
    """Every workspace in the home (runs in a worker)."""

    manager: Any

    def _all(self) -> list[Row]:
        return [info.to_dict() for info in self.manager.list()]

    def fetch(self, offset: int, limit: int) -> list[Row]:
        return self._all()[offset : offset + limit]

    def count(self) -> int:
        return len(self._all())


class WorkspacesScreen(AreaScreen):
    AREA = "workspaces"
    BINDINGS = [
        Binding("n", "create", "New workspace", id="workspace-create"),
        Binding("u", "switch", "Switch to", id="workspace-switch"),
        Binding("x", "delete", "Delete", id="workspace-delete"),
        Binding("I", "import_file", "Import a backup", id="workspace-import"),
    ]
    DEFAULT_CSS = """
    WorkspacesScreen #count { color: $text-muted; }
    WorkspacesScreen #outcome { height: auto; min-height: 3; border-top: solid $primary 30%; padding: 0 1; }
    """

    def compose_area(self) -> ComposeResult:
        yield Static("", id="count")
        yield PagedTable(self._columns(), empty="No workspaces yet.", id="workspaces")
        yield Static(
            "Enter or u switches to the selected workspace; n creates one; x deletes one; "
            "I imports one from a backup file.",
            id="outcome",
            markup=False,
        )

    def _columns(self) -> list[Column]:
        def marker(row: Row) -> str:
            if row["active"]:
                return "● active"
            return "open" if row["name"] == self.context.workspace_name else ""

        return [
            Column(
                "active", "", 9, render=marker, style=lambda r: "green b" if r["active"] else ""
            ),
            Column("name", "NAME", 24),
            Column("store", "STORE", 12),
            Column("path", "FOLDER", 0, render=lambda r: display_path(r["path"])),
        ]

    @property
    def table(self) -> PagedTable:
        return self.query_one("#workspaces", PagedTable)

    def load(self) -> None:
        self.table.set_source(WorkspacePages(self.context.manager))
        self.table.focus()

    def on_paged_table_loaded(self, event: PagedTable.Loaded) -> None:
        self.query_one("#count", Static).update(f"{event.total} workspace(s)")

    def on_paged_table_selected(self, event: PagedTable.Selected) -> None:
        self.action_switch()

    def _selected(self) -> Row | None:
        row = self.table.current_row
        if row is None:
            self.app.notify("Select a workspace first.", severity="warning")
        return row

    def _show_outcome(self, text: str) -> None:
        self.query_one("#outcome", Static).update(text)

    # ---- actions ---------------------------------------------------------------------------
    def action_create(self) -> None:
        from caracal.flow.modals.workspace_create import CreateWorkspaceModal

        def created(result: Any) -> None:
            if result is None:
                return
            info, switch = result
            self.remember(f"created workspace {info.name}")
            for notice in info.notices:
                self.app.notify(notice, severity="warning", timeout=15)
            if switch:
                self.switch_to(info.name)
                return
            self._show_outcome(
                f"Created workspace {info.name} ({info.store}) in {display_path(info.path)}."
            )
            self.app.notify(f"Created workspace {info.name}.")
            self.load()

        self.app.push_screen(CreateWorkspaceModal(), created)

    def action_import_file(self) -> None:
        from caracal.flow.restore_flow import offer_switch, outcome, pick_and_restore

        def restored(file: str, result: Any) -> None:
            from rich.text import Text

            self.query_one("#outcome", Static).update(Text.from_markup(outcome(file, result)))
            self.remember(f"imported {file} as workspace {result.name}")
            self.load()
            offer_switch(self, result)

        pick_and_restore(self, "Import a workspace from a backup file", restored)

    def action_switch(self) -> None:
        row = self._selected()
        if row is None:
            return
        if row["name"] == self.context.workspace_name and row["active"]:
            self.app.notify(f"{row['name']} is already the active workspace.")
            return
        self.switch_to(row["name"])

    def switch_to(self, name: str) -> None:
        """Make `name` active and reopen Flow on it (config, logs, store and state follow)."""
        context, previous = self.context, self.context.workspace_name

        def switched(_: Any) -> None:
            self.app.notify(f"Switched to workspace {name}.")
            self.flow.workspace_changed()

        def work() -> None:
            context.switch(name)
            context.remember(f"switched here from workspace {previous}")

        run_in_background(self, work, done=switched, description="switch workspace")

    def action_delete(self) -> None:
        row = self._selected()
        if row is None:
            return
        name = row["name"]
        if row["active"] or name == self.context.workspace_name:
            self.flow.show_problem(
                f"{name} is the {'active' if row['active'] else 'open'} workspace, so it stays. "
                "Switch to another workspace first (select it and press u); after that, "
                f"{name} can be deleted.",
                title="Switch first",
            )
            return
        from caracal.flow.modals.workspace_delete import DeleteWorkspaceModal

        backups = self.context.manager.home.root / "backups"
        self.app.push_screen(
            DeleteWorkspaceModal(name, backups), lambda archive: self._deleted(name, archive)
        )

    def _deleted(self, name: str, archive: Path | None) -> None:
        """The dialog deleted the workspace (it closes with None when cancelled)."""
        if archive is None:
            return
        locked = " (locked)" if archive.name.endswith(".locked") else ""
        where = f"; its backup{locked} is {archive}"
        self._show_outcome(f"Deleted workspace {name}{where}.")
        self.app.notify(f"Deleted workspace {name}{where}.", timeout=10)
        self.remember(f"deleted workspace {name}{where}")
        self.load()


SCREEN = WorkspacesScreen
