"""Textual's DataTable with the same moving keys as every other Flow table."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable


class RowTable(DataTable[Any]):
    BINDINGS = [
        Binding("k", "cursor_up", "Up", show=False, id="row-up-k"),
        Binding("j", "cursor_down", "Down", show=False, id="row-down-j"),
        Binding("h", "scroll_left", "Left", show=False, id="col-left-h"),
        Binding("l", "scroll_right", "Right", show=False, id="col-right-l"),
        Binding("g", "scroll_top", "First", show=False, id="first-row-g"),
        Binding("G", "scroll_bottom", "Last", show=False, id="last-row-g"),
    ]
