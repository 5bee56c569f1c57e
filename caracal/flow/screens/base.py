"""What every area screen shares: the status bar, the sidebar, the footer, and the keys to move
between areas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, OptionList

from caracal.flow.areas import AREAS, BY_KEY
from caracal.flow.messages import DataChanged
from caracal.flow.widgets.footer import FittingFooter
from caracal.flow.widgets.nav import Nav
from caracal.flow.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from caracal.flow.app import FlowApp
    from caracal.flow.context import FlowContext


def _area_bindings() -> list[Binding]:
    return [
        Binding(a.digit, f"app.goto('{a.key}')", a.title, show=False, id=f"goto-{a.key}")
        for a in AREAS
        if a.digit
    ]


class AreaScreen(Screen[None]):
    """Subclasses set AREA and implement `compose_area` and `load`."""

    AREA = "dashboard"
    # Shown, the keys go to the area's table (or tree, or log), not to the sidebar.
    HOME = "#area PagedTable, #area Tree, #area RichLog, #area DataTable"
    AUTO_FOCUS = HOME
    BINDINGS = [
        Binding("escape", "back", "Back", id="back"),
        Binding("slash", "focus_filter", "Filter", id="filter"),
        Binding("ctrl+r", "reload", "Refresh", id="refresh"),
        *_area_bindings(),
    ]

    @property
    def flow(self) -> FlowApp:
        return self.app  # type: ignore[return-value]

    @property
    def context(self) -> FlowContext:
        return self.flow.context

    def compose(self) -> ComposeResult:
        bar = StatusBar(id="status")
        bar.area = BY_KEY[self.AREA].title
        yield bar
        with Horizontal(id="body"):
            yield Nav(self.AREA)
            with Vertical(id="area"):
                yield from self.compose_area()
        yield FittingFooter()

    def compose_area(self) -> ComposeResult:
        yield from ()

    needs_load = False  # set when the screen is (re)shown as an area, not after a dialog

    wanted_row: str | None = None  # the row to select once the table has loaded (saved state)

    def on_mount(self) -> None:
        self.flow.paint_status(self.query_one(StatusBar))
        saved = self.flow.saved_views.pop(self.AREA, None)
        if isinstance(saved, dict):
            self.apply_view(saved)
        if self.context.has_workspace:
            self.needs_load = False
            self.load()

    def on_screen_resume(self) -> None:
        if self.needs_load and self.is_mounted and self.context.has_workspace:
            self.needs_load = False
            self.flow.paint_status(self.query_one(StatusBar))
            self.load()
        # After any dialog closes the keys go back to the area, never to nothing.
        self.call_after_refresh(self.restore_focus)

    def home_widget(self) -> Widget | None:
        """Where the keys go when nothing else has them: the area's main table (or tree/log)."""
        for widget in self.query(self.HOME):
            if widget.focusable:
                return widget
        return None

    def restore_focus(self) -> None:
        if self.app.screen is not self or not self.is_mounted:
            return
        focused = self.focused
        if focused is None or not focused.is_attached or not focused.focusable:
            home = self.home_widget()
            if home is not None:
                home.focus()
                focused = home
        if focused is not None:
            focused.scroll_visible(animate=False)

    def workspace_ready(self) -> None:
        """The workspace finished opening after this screen was shown (at start-up)."""
        self.flow.paint_status(self.query_one(StatusBar))
        self.load()

    def load(self) -> None:
        """(Re)load this area's data; runs whenever the screen shows or data changes."""

    # ---- remembered view (flow_state.json) -------------------------------------------------
    def view_state(self) -> dict[str, Any]:
        from caracal.flow.view_state import read_view

        return read_view(self)

    def apply_view(self, view: dict[str, Any]) -> None:
        from caracal.flow.view_state import apply_filters

        apply_filters(self, view)
        selected = view.get("selected")
        if isinstance(selected, str):
            self.want_row(selected)

    def want_row(self, key: str) -> None:
        """Select this row after the next load (screens with their own tables override)."""
        self.wanted_row = key

    def on_paged_table_loaded(self, event: Any) -> None:
        from caracal.flow.view_state import row_key

        wanted, self.wanted_row = self.wanted_row, None
        if wanted is None:
            return
        table = event.table
        for index in range(min(table.total, table.PAGE)):
            if row_key(table.row_at(index)) == wanted:
                table.cursor = index
                return

    def on_data_changed(self, message: DataChanged) -> None:
        self.load()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if isinstance(event.option_list, Nav) and event.option.id:
            event.stop()
            self.flow.goto(event.option.id)

    def action_back(self) -> None:
        """esc in the filter clears it and hands the keys back to the table; anywhere else it
        goes back to the area shown before."""
        focused = self.focused
        if isinstance(focused, Input) and focused.id == "filter":
            focused.value = ""
            home = self.home_widget()
            if home is not None:
                home.focus()
            else:
                self.set_focus(None)
            return
        self.flow.go_back()

    def action_focus_filter(self) -> None:
        for widget in self.query(Input):
            if widget.id == "filter":
                widget.focus()
                return

    def action_reload(self) -> None:
        self.load()

    def remember(self, action: str, **_: Any) -> None:
        """Record a line in the workspace's recent actions (a file write, off the UI thread)."""
        from caracal.flow.tasks import run_in_background

        run_in_background(self, lambda: self.context.remember(action), group="state", locked=False)
