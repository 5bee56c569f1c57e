"""Secret settings from Flow: set, replaced and cleared through a masked input, stored sealed
by the same service `caracal config set` uses, and never shown back (only "set"/"not set")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.widgets import Checkbox, Input

from caracal.flow.app import FlowApp
from tests.flow.conftest import SIZE, ok, screen_name, settle, until
from tests.flow.test_settings import WORKSPACE, open_settings, screen_text, select_key, shown_value

KEY = "runtime.redis_url"


def revealed() -> Any:
    return ok("config", "get", KEY, "--reveal").stdout.strip()


async def open_secret(app: FlowApp, pilot: Any) -> Input:
    await select_key(app, pilot, KEY)
    await pilot.press("e")
    await until(pilot, lambda: screen_name(app) == "SecretSettingModal", what="secret form")
    field = app.screen.query_one("#secret-value", Input)
    assert field.password and app.focused is field
    return field


async def test_set_replace_and_clear_a_secret_without_seeing_it(
    home: Path,
    world: dict[str, str],
    app_factory: Callable[..., FlowApp],
) -> None:
    config = home / WORKSPACE / "config.yaml"
    app = app_factory()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_settings(app, pilot)
        assert shown_value(app, KEY) == "not set"

        # Set: typed masked, stored sealed, shown as "set" and never as the value.
        await open_secret(app, pilot)
        assert "Currently not set" in screen_text(app)
        await pilot.press("enter")  # nothing typed: refused in place
        await until(pilot, lambda: "Type the new value" in screen_text(app), what="error")
        await pilot.press(*"redis://:first-pw@cache:6379/0")
        assert "first-pw" not in app.export_screenshot()
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(app) == "SettingsScreen", what="form closed")
        await until(pilot, lambda: shown_value(app, KEY) == "set", what="shown as set")
        await settle(pilot)
        assert "first-pw" not in screen_text(app)
        assert "first-pw" not in config.read_text() and "ENC[" in config.read_text()
        assert revealed() == "redis://:first-pw@cache:6379/0"

        # Replace: the new value is taken literally (not read as YAML).
        await open_secret(app, pilot)
        assert "Currently set" in screen_text(app)
        await pilot.press(*"yes", "ctrl+s")
        await until(pilot, lambda: screen_name(app) == "SettingsScreen", what="form closed")
        await settle(pilot)
        assert revealed() == "yes"
        assert "yes" not in [str(c) for c in app.screen.query_one("#config").get_row(KEY)]

        # Clear: ticked, saved, "not set" everywhere.
        await open_secret(app, pilot)
        await pilot.press("tab")
        await until(pilot, lambda: isinstance(app.focused, Checkbox), what="clear box")
        await pilot.press("space", "ctrl+s")
        await until(pilot, lambda: screen_name(app) == "SettingsScreen", what="form closed")
        await until(pilot, lambda: shown_value(app, KEY) == "not set", what="shown as not set")
        await settle(pilot)
        assert revealed() in ("", "null", "None")


async def test_the_store_location_stays_read_only(
    home: Path,
    world: dict[str, str],
    app_factory: Callable[..., FlowApp],
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_settings(app, pilot)
        assert shown_value(app, "store.url") == "set"
        await select_key(app, pilot, "store.url")
        await pilot.press("e")
        await until(pilot, lambda: "read-only here" in screen_text(app), what="refused")
        assert screen_name(app) == "SettingsScreen"
