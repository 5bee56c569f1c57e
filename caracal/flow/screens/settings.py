"""Settings: the workspace's config values (secrets masked), Flow preferences and the keymap.

Values come from the facade already masked (`settings.items(reveal=False)`): a secret never
reaches this screen, so it can never be shown. Non-secret values are changed through a small
form the facade validates; preferences are saved to the workspace's Flow state.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Label, Select, Static, Switch

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.row_table import RowTable

COMMANDS = [
    ("Change the selected config value", "edit"),
    ("Choose the theme", "theme"),
    ("Ask or not before destructive actions", "toggle_confirm"),
]
STORE_NOTE = "it points the workspace at another store; use `caracal config set`"


class SettingsScreen(AreaScreen):
    AREA = "settings"
    BINDINGS = [
        Binding("e", "edit", "Edit value", id="settings-edit"),
        Binding("m", "theme", "Theme", id="settings-theme"),
        Binding("p", "toggle_confirm", "Confirm destructive", id="settings-confirm"),
    ]
    DEFAULT_CSS = """
    SettingsScreen #settings { height: 1fr; }
    SettingsScreen #config { height: auto; max-height: 24; }
    SettingsScreen .pref { height: auto; margin-top: 1; }
    SettingsScreen .pref Label { width: 34; padding: 1 0 0 0; }
    SettingsScreen .pref Select { width: 40; }
    SettingsScreen #keymap { margin-top: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, Any] = {}
        self.prefs: dict[str, Any] | None = None  # as saved; None until read

    def compose_area(self) -> ComposeResult:
        themes = sorted(self.app.available_themes)
        with VerticalScroll(id="settings"):
            yield Label("Configuration", classes="section-title")
            yield Static(
                "e or Enter changes the selected value. A secret is never shown, only whether "
                "it is set; it is typed masked and stored sealed.",
                classes="muted",
                markup=False,
            )
            yield RowTable(id="config", cursor_type="row", zebra_stripes=True)
            yield Label("Preferences", classes="section-title")
            with Horizontal(classes="pref"):
                yield Label("Theme (m)")
                yield Select(
                    [(name, name) for name in themes],
                    value=self.app.theme if self.app.theme in themes else Select.NULL,
                    allow_blank=False,
                    id="theme",
                )
            with Horizontal(classes="pref"):
                yield Label("Ask before destructive actions (p)")
                yield Switch(value=True, id="confirm-destructive")
            yield Label("Keys", classes="section-title")
            yield Static(self._keymap(), id="keymap")

    @staticmethod
    def _keymap() -> str:
        from caracal.flow.modals.help import render_keymap

        return render_keymap("settings")

    def on_mount(self) -> None:
        table = self.query_one("#config", DataTable)
        table.add_column("SETTING", key="key", width=46)
        table.add_column("VALUE", key="value", width=40)
        table.add_column("", key="note")
        super().on_mount()
        table.focus()

    # ---- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        caracal, context = self.context.caracal, self.context

        def work() -> tuple[dict[str, Any], dict[str, Any]]:
            prefs = context.read_state().get("preferences")
            return caracal.settings.items(reveal=False), prefs if isinstance(prefs, dict) else {}

        run_in_background(self, work, done=self._loaded, description="settings")

    def _loaded(self, loaded: tuple[dict[str, Any], dict[str, Any]]) -> None:
        from caracal.flow.text import setting_label
        from caracal.home.config_model import secret_keys

        values, prefs = loaded
        self.values = values
        secrets = secret_keys()
        table = self.query_one("#config", DataTable)
        selected = self.selected_key()
        table.clear()
        settings = self.context.caracal.settings
        for key, value in values.items():
            fixed = settings.read_only(key) or settings.locates_store(key)
            note = "secret" if key in secrets else ("read-only" if fixed else "")
            shown = _secret_cell(value) if key in secrets else _cell(value)
            table.add_row(Text(setting_label(key)), shown, Text(note, style="dim"), key=key)
        if selected in values:
            table.move_cursor(row=table.get_row_index(selected))
        self.prefs = {
            "theme": prefs.get("theme"),
            "confirm_destructive": bool(prefs.get("confirm_destructive", True)),
        }
        self.query_one("#confirm-destructive", Switch).value = self.prefs["confirm_destructive"]

    def selected_key(self) -> str | None:
        table = self.query_one("#config", DataTable)
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(row_key.value) if row_key.value is not None else None

    # ---- config values ---------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "config":
            event.stop()
            self.action_edit()

    def action_edit(self) -> None:
        from caracal.home.config_model import secret_keys

        key = self.selected_key()
        if key is None:
            return
        settings = self.context.caracal.settings
        reason = settings.read_only(key) or (STORE_NOTE if settings.locates_store(key) else None)
        if reason is not None:
            self.app.notify(f"{key} is read-only here: {reason}.", severity="warning")
            return
        if key in secret_keys():
            self._edit_secret(key)
            return
        from caracal.flow.modals.settings_value import EditSettingModal

        def saved(result: tuple[str, Any] | None) -> None:
            if result is None:
                return
            changed, value = result
            self.remember(f"set {changed} to {value}")
            self.app.notify(f"Saved {changed} = {value}. It applies when the workspace reopens.")
            self.load()

        self.app.push_screen(EditSettingModal(key, self.values.get(key)), saved)

    def _edit_secret(self, key: str) -> None:
        from caracal.flow.modals.secret_setting import SecretSettingModal

        def saved(result: tuple[str, bool] | None) -> None:
            if result is None:
                return
            changed, is_set = result
            state = "set" if is_set else "cleared"
            self.remember(f"{state} secret {changed}")
            self.app.notify(
                f"{changed} {state} (sealed in config.yaml). It applies when the workspace reopens."
            )
            self.load()

        is_set = self.values.get(key) is not None
        self.app.push_screen(SecretSettingModal(key, is_set), saved)

    # ---- preferences -----------------------------------------------------------------------
    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "theme" or not isinstance(event.value, str):
            return
        event.stop()
        if event.value != self.app.theme:
            self.app.theme = event.value  # applied at once
        if self.prefs is not None and self.prefs.get("theme") != event.value:
            self._save("theme", event.value, f"Theme {event.value} saved.")

    def on_switch_changed(self, event: Switch.Changed) -> None:
        if event.switch.id != "confirm-destructive":
            return
        event.stop()
        if self.prefs is not None and self.prefs.get("confirm_destructive") != event.value:
            self._save(
                "confirm_destructive",
                event.value,
                "Flow will ask before destructive actions."
                if event.value
                else "Flow will no longer ask before destructive actions.",
            )

    def _save(self, name: str, value: Any, message: str) -> None:
        assert self.prefs is not None
        self.prefs[name] = value
        prefs = self.prefs

        def change(state: dict[str, Any]) -> None:
            saved = state.get("preferences")
            if not isinstance(saved, dict):
                saved = state["preferences"] = {}
            saved[name] = prefs[name]  # the latest choice, whichever save runs last

        context = self.context
        run_in_background(
            self,
            lambda: context.update_state(change),
            done=lambda _: self.app.notify(message),
            group="state",
            description="save preferences",
        )

    def action_theme(self) -> None:
        select = self.query_one("#theme", Select)
        select.focus()
        select.action_show_overlay()

    def action_toggle_confirm(self) -> None:
        switch = self.query_one("#confirm-destructive", Switch)
        if self.prefs is not None:
            switch.toggle()


def _secret_cell(value: Any) -> Text:
    """A secret shows only whether it holds a value, never the value or its shape."""
    return Text("set") if value is not None else Text("not set", style="dim italic")


def _cell(value: Any) -> Text:
    if value is None:
        return Text("not set", style="dim italic")
    if isinstance(value, bool):
        return Text("true" if value else "false")
    return Text(str(value))


SCREEN = SettingsScreen
