"""Settings: masked config values, validated edits, preferences saved to Flow state, keymap."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from textual.widgets import DataTable, OptionList, Select, Static, Switch

from caracal.flow.app import FlowApp
from caracal.home.config import known_keys
from tests.flow.conftest import SIZE, discard_form, ok, screen_name, settle, until

WORKSPACE = Path("workspaces") / "demo"


def config_table(app: FlowApp) -> DataTable[Any]:
    return app.screen.query_one("#config", DataTable)


def shown_value(app: FlowApp, key: str) -> str:
    return str(config_table(app).get_cell(key, "value"))


def screen_text(app: FlowApp) -> str:
    """Everything the widgets hold, visible or scrolled away, plus the rendered screen."""
    parts = [app.export_screenshot()]
    for screen in app.screen_stack:
        for widget in [*screen.query(Static), *screen.query("Toast")]:  # Toast: no CSS parent
            parts.append(str(widget.render()))
        for table in screen.query(DataTable):
            for row in range(table.row_count):
                parts += [str(cell) for cell in table.get_row_at(row)]
    return "\n".join(parts)


def top_hit(app: FlowApp) -> str:
    hits = app.screen.query_one("CommandList", OptionList)
    return str(hits.get_option_at_index(0).prompt) if hits.highlighted == 0 else ""


async def open_settings(app: FlowApp, pilot: Any) -> None:
    await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
    await pilot.press("ctrl+p")
    await until(pilot, lambda: screen_name(app) == "CommandPalette", what="palette")
    await pilot.press(*"go to settings")
    await until(pilot, lambda: top_hit(app).startswith("Go to Settings"), what="palette hit")
    await pilot.press("enter")
    await until(pilot, lambda: screen_name(app) == "SettingsScreen", what="settings screen")
    await until(pilot, lambda: config_table(app).row_count == len(known_keys()), what="values")
    await settle(pilot)


async def select_key(app: FlowApp, pilot: Any, key: str) -> None:
    table = config_table(app)
    assert app.focused is table  # the screen opens with the values focused
    row = table.get_row_index(key)
    moves = row - table.cursor_row
    await pilot.press(*(["down"] * moves if moves > 0 else ["up"] * -moves))
    await until(pilot, lambda: table.cursor_row == row, what=f"row {key}")


async def test_secrets_show_only_whether_they_are_set(
    home: Path,
    world: dict[str, str],
    app_factory: Callable[..., FlowApp],
) -> None:
    ok("config", "set", "runtime.redis_url", "--stdin", input="redis://:pw@h:6379/0")
    assert "pw@" not in (home / WORKSPACE / "config.yaml").read_text()  # stored encrypted
    app = app_factory()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_settings(app, pilot)
        assert shown_value(app, "runtime.redis_url") == "set"
        assert "pw@" not in screen_text(app) and "6379" not in screen_text(app)

        # Enter on the secret row opens a masked input that never holds the value.
        await select_key(app, pilot, "runtime.redis_url")
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(app) == "SecretSettingModal", what="secret form")
        assert "Currently set" in screen_text(app)
        assert "pw@" not in screen_text(app) and "6379" not in screen_text(app)


async def test_editing_a_value_is_validated_by_the_facade_and_saved(
    home: Path,
    world: dict[str, str],
    app_factory: Callable[..., FlowApp],
) -> None:
    config = home / WORKSPACE / "config.yaml"
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_settings(app, pilot)
        assert shown_value(app, "validation.clock_leeway_seconds") == "30"
        await select_key(app, pilot, "validation.clock_leeway_seconds")

        # An invalid value: refused inline, the form stays open with what was typed.
        await pilot.press("e")
        await until(pilot, lambda: screen_name(app) == "EditSettingModal", what="form")
        await pilot.press(*"a lot", "enter")
        await until(
            pilot,
            lambda: "clock_leeway_seconds" in str(app.screen.query_one("#form-error").render()),
            what="inline error",
        )
        assert screen_name(app) == "EditSettingModal"
        assert yaml.safe_load(config.read_text())["validation"]["clock_leeway_seconds"] == 30
        await pilot.press("end", *["backspace"] * 5, *"9999", "enter")
        await until(
            pilot,
            lambda: (
                "less than or equal to 600" in str(app.screen.query_one("#form-error").render())
            ),
            what="range error",
        )
        await discard_form(pilot, "SettingsScreen")
        assert yaml.safe_load(config.read_text())["validation"]["clock_leeway_seconds"] == 30

        # A valid value: saved to config.yaml, shown in the table.
        await pilot.press("enter")  # Enter on the row opens the same form
        await until(pilot, lambda: screen_name(app) == "EditSettingModal")
        await pilot.press(*"45", "enter")  # the current value is selected: typing replaces it
        await until(pilot, lambda: screen_name(app) == "SettingsScreen", what="form closed")
        await until(
            pilot,
            lambda: shown_value(app, "validation.clock_leeway_seconds") == "45",
            what="new value shown",
        )
        await settle(pilot)
    assert yaml.safe_load(config.read_text())["validation"]["clock_leeway_seconds"] == 45


async def test_theme_and_confirmation_are_applied_and_saved_to_flow_state(
    home: Path,
    world: dict[str, str],
    app_factory: Callable[..., FlowApp],
) -> None:
    state_file = home / WORKSPACE / "flow_state.json"

    def prefs() -> dict[str, Any]:
        return json.loads(state_file.read_text())["preferences"]  # type: ignore[no-any-return]

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_settings(app, pilot)
        before = app.theme
        assert app.screen.query_one("#theme", Select).value == before
        await pilot.press("m")  # focus the theme list and open it
        await until(pilot, lambda: app.screen.query_one("#theme", Select).expanded)
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.theme != before, what="theme applied")
        chosen = app.theme
        await until(pilot, lambda: prefs()["theme"] == chosen, what="theme saved")

        assert app.screen.query_one("#confirm-destructive", Switch).value is True
        await pilot.press("p")
        await until(pilot, lambda: prefs()["confirm_destructive"] is False, what="switch saved")
        assert "Keys" in screen_text(app) and "Pause/resume" in screen_text(app)  # keymap
        await settle(pilot)

    again = app_factory()  # the saved theme is applied at start
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(again) == "DashboardScreen")
        assert again.theme == chosen
