"""After any dialog closes, the keyboard is back on the table it came from."""

from __future__ import annotations

from typing import Any

import pytest

from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, screen_name, settle, until

KEY = "correct horse battery"


@pytest.mark.parametrize("answer", ["n", "escape"])
async def test_keys_work_after_a_successful_restore(
    world: dict[str, str], app_factory: Any, answer: str
) -> None:
    with Caracal.open("demo") as caracal:
        caracal.backups.create(lock_key=KEY)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("9")
        await until(
            pilot,
            lambda: (
                screen_name(app) == "BackupsScreen" and app.screen.query_one("#archives").total == 1
            ),
        )
        await pilot.press("r")
        await until(pilot, lambda: screen_name(app) == "RestoreArchiveModal")
        await pilot.press("ctrl+a", "ctrl+k", *"copy", "enter", *KEY, "enter")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal", timeout=30)
        await pilot.press(answer)
        await until(pilot, lambda: screen_name(app) == "BackupsScreen")
        await settle(pilot)
        table = app.screen.query_one("#archives")
        assert app.focused is table
        await pilot.press("4")
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")


def has_rows(table: Any) -> bool:
    return bool(getattr(table, "loaded", False) or getattr(table, "row_count", 0))


DIALOGS = [
    ("3", "ProvidersScreen", "n", "#providers"),
    ("4", "PrincipalsScreen", "n", "#principals"),
    ("5", "PoliciesScreen", "n", "#policies"),
    ("6", "MandatesScreen", "i", "#mandates"),
    ("6", "MandatesScreen", "x", "#mandates"),
    ("9", "BackupsScreen", "n", "#archives"),
]


@pytest.mark.parametrize(("digit", "screen", "key", "table"), DIALOGS)
async def test_focus_returns_to_the_table_after_a_dialog(
    world: dict[str, str], app_factory: Any, digit: str, screen: str, key: str, table: str
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press(digit)
        await until(pilot, lambda: screen_name(app) == screen)
        await until(pilot, lambda: has_rows(app.screen.query_one(table)), what="rows")
        await settle(pilot)
        await pilot.press(key)
        await until(pilot, lambda: screen_name(app) != screen, what="a dialog")
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == screen)
        await settle(pilot)
        widget = app.screen.query_one(table)
        assert app.focused is widget
        assert widget.region.intersection(app.screen.region).area > 0
