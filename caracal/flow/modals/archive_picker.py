"""Pick a backup archive anywhere on this machine: a path field that completes names (→ takes
the suggestion) and a folder listing showing only folders and archives. Enter on a file picks
it; Enter on a folder opens it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import DirectoryTree, Input, Label, Static

from caracal.flow.widgets.footer import FittingFooter

ARCHIVE_ENDINGS = (".tar.gz", ".tar.gz.locked")


def is_archive_name(name: str) -> bool:
    return name.endswith(ARCHIVE_ENDINGS)


def archive_row(path: Path) -> dict[str, Any]:
    """An archive file as the restore dialog takes it (a row of the Backups table)."""
    from caracal.services.backup.envelope import locked

    return {"file": path.name, "path": str(path), "locked": locked(path)}


class PathSuggester(Suggester):
    """Completes the last part of a path from what is in its folder (folders end with /)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        typed = Path(value).expanduser()
        folder, stem = (typed, "") if value.endswith(os.sep) else (typed.parent, typed.name)
        try:
            names = sorted(
                entry.name + (os.sep if entry.is_dir() else "")
                for entry in os.scandir(folder)
                if entry.name.startswith(stem)
                and not entry.name.startswith(".")
                and (entry.is_dir() or is_archive_name(entry.name))
            )
        except OSError:
            return None
        if not names or names[0] == stem:
            return None
        return value + names[0][len(stem) :]


class ArchiveTree(DirectoryTree):
    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p
            for p in paths
            if not p.name.startswith(".") and (p.is_dir() or is_archive_name(p.name))
        ]


class PickArchiveModal(ModalScreen[Path | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="picker-cancel"),
        Binding("tab", "app.focus_next", "Next field", id="picker-next"),
    ]
    KEYS_HINT = (
        "enter picks a file or opens a folder · → completes the path · tab list · esc cancel"
    )
    DEFAULT_CSS = """
    PickArchiveModal { align: center middle; }
    PickArchiveModal > Vertical { width: 90%; max-width: 110; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    PickArchiveModal #picker-title { text-style: bold; padding: 1 0 0 0; }
    PickArchiveModal .hint, PickArchiveModal #picker-keys { color: $text-muted; }
    PickArchiveModal #picker-error { color: $error; height: auto; min-height: 1; }
    PickArchiveModal ArchiveTree { height: 1fr; }
    """

    def __init__(self, title: str, start: Path | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.start = start if start is not None and start.is_dir() else Path.home()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="picker-title")
            yield Static(
                "Type or complete a path to a backup archive (.tar.gz, .tar.gz.locked), or "
                "pick it in the list.",
                classes="hint",
            )
            yield Input(str(self.start) + os.sep, id="archive-path", suggester=PathSuggester())
            yield Static("", id="picker-error")
            yield ArchiveTree(self.start, id="archive-tree")
            yield Static(self.KEYS_HINT, id="picker-keys", markup=False)
        yield FittingFooter()

    def on_mount(self) -> None:
        field = self.query_one("#archive-path", Input)
        field.focus()
        field.cursor_position = len(field.value)

    def _error(self, text: str) -> None:
        self.query_one("#picker-error", Static).update(text)

    def _open_folder(self, folder: Path) -> None:
        tree = self.query_one("#archive-tree", ArchiveTree)
        if tree.path != folder:
            tree.path = folder
        field = self.query_one("#archive-path", Input)
        field.value = str(folder).rstrip(os.sep) + os.sep
        field.cursor_position = len(field.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            self._error("Type a path to a backup archive, or esc to cancel.")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self._error("")
            self._open_folder(path)
        elif path.is_file():
            self._pick(path)
        else:
            self._error(f"Nothing at {path}: type another path, or pick a file in the list.")

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self._pick(event.path)

    def _pick(self, path: Path) -> None:
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            self._error(f"{path} cannot be read ({exc.strerror}); pick another file.")
            return
        self.dismiss(path.resolve())

    def action_cancel(self) -> None:
        self.dismiss(None)
