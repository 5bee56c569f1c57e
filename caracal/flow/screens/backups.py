"""Backups: the archives of this workspace (and the safety backups written before a workspace
was deleted), with create (optionally locked), verify and restore into a new workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.widgets import Static

from caracal.flow.screens.base import AreaScreen
from caracal.flow.text import display_path
from caracal.flow.widgets.paged_table import Column, PagedTable, Row

COMMANDS = [
    ("Create a backup", "create"),
    ("Verify the selected archive", "verify"),
    ("Restore the selected archive into a new workspace", "restore"),
    ("Restore an archive from any file into a new workspace", "import_file"),
]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def archives_in(folder: Path) -> list[Row]:
    """Archives in a folder outside the workspace, shaped like `backups.listing()` rows.

    The facade lists only the workspace's own folder; the safety backups `delete` writes go
    to `$CARACAL_HOME/backups/`, and those are the ones worth restoring."""
    from caracal.services.backup.envelope import locked

    if not folder.is_dir():
        return []
    rows: list[Row] = []
    for path in sorted(folder.glob("*.tar.gz*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
        rows.append(
            {
                "file": path.name,
                "path": str(path),
                "size": stat.st_size,
                "modified": modified,
                "locked": locked(path),
            }
        )
    return rows


@dataclass
class ArchivePages:
    """This workspace's archives, then the home's safety backups, newest first (in a worker)."""

    app: Any
    home_backups: Path

    def _all(self) -> list[Row]:
        own = [{**row, "where": "workspace"} for row in self.app.backups.listing()]
        safety = [{**row, "where": "home"} for row in archives_in(self.home_backups)]
        return sorted(own + safety, key=lambda r: (r["modified"], r["file"]), reverse=True)

    def fetch(self, offset: int, limit: int) -> list[Row]:
        return self._all()[offset : offset + limit]

    def count(self) -> int:
        return len(self._all())


class BackupsScreen(AreaScreen):
    AREA = "backups"
    BINDINGS = [
        Binding("n", "create", "New backup", id="backup-create"),
        Binding("v", "verify", "Verify", id="backup-verify"),
        Binding("r", "restore", "Restore", id="backup-restore"),
        Binding("I", "import_file", "Restore a file", id="backup-import"),
    ]
    DEFAULT_CSS = """
    BackupsScreen #count { color: $text-muted; }
    BackupsScreen #outcome { height: auto; min-height: 4; border-top: solid $primary 30%; padding: 0 1; }
    """

    def compose_area(self) -> ComposeResult:
        yield Static("", id="count")
        yield PagedTable(self._columns(), empty="No backups yet: press n.", id="archives")
        yield Static(
            "n writes a backup; v verifies the selected archive; r restores it into a new "
            "workspace; I restores an archive from any file.",
            id="outcome",
        )

    @staticmethod
    def _columns() -> list[Column]:
        return [
            Column("file", "FILE", 0),
            Column("size", "SIZE", 9, render=lambda r: human_size(r["size"])),
            Column(
                "modified",
                "TIME",
                20,
                render=lambda r: r["modified"].replace("T", " ").replace("+00:00", "Z"),
            ),
            Column(
                "locked",
                "LOCKED",
                7,
                render=lambda r: "locked" if r["locked"] else "no",
                style=lambda r: "yellow" if r["locked"] else "",
            ),
            Column(
                "where",
                "FOLDER",
                10,
                render=lambda r: "workspace" if r["where"] == "workspace" else "home",
            ),
        ]

    @property
    def table(self) -> PagedTable:
        return self.query_one("#archives", PagedTable)

    def load(self) -> None:
        home_backups = self.context.manager.home.root / "backups"
        self.table.set_source(ArchivePages(self.context.caracal, home_backups))
        self.table.focus()

    def on_paged_table_loaded(self, event: PagedTable.Loaded) -> None:
        self.query_one("#count", Static).update(
            f"{event.total} archive(s), newest first. FOLDER workspace: this workspace's "
            "backups; home: the safety backups written before a workspace was deleted."
        )

    def on_paged_table_selected(self, event: PagedTable.Selected) -> None:
        self.action_verify()

    def _selected(self) -> Row | None:
        row = self.table.current_row
        if row is None:
            self.app.notify("Select an archive first.", severity="warning")
        return row

    def _show_outcome(self, text: str) -> None:
        self.query_one("#outcome", Static).update(text)

    # ---- create ----------------------------------------------------------------------------
    def action_create(self) -> None:
        from caracal.flow.modals.backup_create import CreateBackupModal

        def written(result: Any) -> None:
            if result is None:
                return
            kind = "locked, secrets included" if result.locked else "not locked, secrets omitted"
            self._show_outcome(
                f"[green b]Written[/] {escape(display_path(result.path))}\n{human_size(result.size)}, {kind}, "
                f"ledger head {result.head_seq}, {result.seconds:.2f}s"
            )
            self.remember(f"wrote backup {result.path.name}")
            self.app.notify(f"Backup written: {result.path.name}")
            self.load()

        self.app.push_screen(CreateBackupModal(), written)

    # ---- verify ----------------------------------------------------------------------------
    def action_verify(self) -> None:
        row = self._selected()
        if row is None:
            return
        # In a dialog, locked or not: it shows the progress and esc stops it.
        from caracal.flow.modals.backup_verify import VerifyArchiveModal

        self.app.push_screen(
            VerifyArchiveModal(row),
            lambda report: self._show_report(row, report) if report else None,
        )

    def _show_report(self, row: Row, report: Any) -> None:
        if report.ok:
            tables = ", ".join(f"{n} {t}" for t, n in sorted(report.tables.items()) if n)
            self._show_outcome(
                f"[green b]OK[/] {escape(row['file'])}: workspace {report.workspace}, made "
                f"{report.created_at}, {report.ledger_events} ledger events, secrets "
                f"{'included' if report.secrets_included else 'omitted'}\n{tables}"
            )
        else:
            self._show_outcome(
                f"[red b]PROBLEM[/] {escape(row['file'])}: {escape(str(report.problem))}"
            )

    # ---- restore ---------------------------------------------------------------------------
    def action_restore(self) -> None:
        row = self._selected()
        if row is not None:
            from caracal.flow.restore_flow import restore_row

            restore_row(self, row, self._restored)

    def action_import_file(self) -> None:
        from caracal.flow.restore_flow import pick_and_restore

        pick_and_restore(self, "Restore an archive from a file", self._restored)

    def _restored(self, file: str, result: Any) -> None:
        from caracal.flow.restore_flow import offer_switch, outcome

        self._show_outcome(outcome(file, result))
        self.remember(f"restored {file} into workspace {result.name}")
        offer_switch(self, result)


SCREEN = BackupsScreen
