"""What Flow remembers of an area between runs: its filters and the selected row.

Read from and applied to an area screen's widgets: the `/` filter and the toolbar's choices,
and the main table's selected row (by id, name or file, never by position)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.widgets import DataTable, Input, Select

if TYPE_CHECKING:
    from caracal.flow.screens.base import AreaScreen

ROW_KEYS = ("id", "name", "file", "seq")
FILTERS = ".toolbar Input, .toolbar Select, Input#filter"


def row_key(row: dict[str, Any] | None) -> str | None:
    if row is None:
        return None
    for key in ROW_KEYS:
        if row.get(key) is not None:
            return str(row[key])
    return None


def _value(widget: object) -> str | None:
    if isinstance(widget, Input):
        return None if widget.password else widget.value
    if isinstance(widget, Select) and isinstance(widget.value, str):
        return widget.value
    return None


def read_view(screen: AreaScreen) -> dict[str, Any]:
    from caracal.flow.widgets.paged_table import PagedTable

    filters: dict[str, str] = {}
    for widget in screen.query(FILTERS):
        value = _value(widget)
        if widget.id and value is not None:
            filters[widget.id] = value
    view: dict[str, Any] = {"filters": filters}
    home = screen.home_widget()
    selected: str | None = None
    if isinstance(home, PagedTable):
        selected = row_key(home.current_row)
    elif isinstance(home, DataTable) and home.row_count:
        value = home.coordinate_to_cell_key(home.cursor_coordinate).row_key.value
        selected = str(value) if value is not None else None
    if selected is not None:
        view["selected"] = selected
    return view


def apply_filters(screen: AreaScreen, view: dict[str, Any]) -> None:
    """Put the saved filters back (a choice no longer offered is skipped)."""
    filters = view.get("filters")
    if not isinstance(filters, dict):
        return
    for widget in screen.query(FILTERS):
        saved = filters.get(widget.id or "")
        if not isinstance(saved, str):
            continue
        offered = isinstance(widget, Input) or (
            isinstance(widget, Select) and any(value == saved for _, value in widget._options)
        )
        if offered:
            widget.value = saved  # type: ignore[attr-defined]
