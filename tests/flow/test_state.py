"""Flow remembers, per workspace in flow_state.json, the area, its filters and the selected row:
a restart comes back to them."""

from __future__ import annotations

import json
from typing import Any

from caracal.home.paths import HomePaths
from tests.flow.conftest import SIZE, screen_name, settle, until


async def test_area_filters_and_selection_survive_a_restart(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("4")
        table = app.screen.query_one("#principals")
        await until(pilot, lambda: table.row_count == 4)
        await pilot.press("slash", *"o", "enter")  # orch and w1 (a worker)
        await until(pilot, lambda: table.row_count < 4, what="filtered")
        await pilot.press("down")
        await settle(pilot)
        chosen = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        shown = table.row_count
        await pilot.press("q")
        await settle(pilot)

    state = json.loads(HomePaths.from_env().workspace("demo").flow_state.read_text())
    assert state["area"] == "principals"
    assert state["views"]["principals"] == {"filters": {"filter": "o"}, "selected": chosen}

    again = app_factory()
    async with again.run_test(size=SIZE) as pilot:
        # The area is pushed before its widgets are mounted: wait for the table itself.
        await until(
            pilot,
            lambda: (
                screen_name(again) == "PrincipalsScreen" and bool(again.screen.query("#principals"))
            ),
            what="same area",
        )
        table = again.screen.query_one("#principals")
        await until(pilot, lambda: table.row_count == shown, what="same filter")
        assert again.screen.query_one("#filter").value == "o"
        await until(
            pilot,
            lambda: (
                str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value) == chosen
            ),
            what="same row",
        )
        assert again.focused is table


async def test_mandate_filters_come_back_too(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("6")
        table = app.screen.query_one("#mandates")
        await until(pilot, lambda: table.total == 1)
        app.screen.query_one("#status-filter").value = "revoked"
        await until(pilot, lambda: table.loaded and table.total == 0, what="no revoked")
        await pilot.press("1")  # leaving the area saves it
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)

    again = app_factory()
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(again) == "DashboardScreen")
        await pilot.press("6")
        await until(pilot, lambda: screen_name(again) == "MandatesScreen")
        assert again.screen.query_one("#status-filter").value == "revoked"
        await until(pilot, lambda: again.screen.query_one("#mandates").loaded)
        assert again.screen.query_one("#mandates").total == 0
