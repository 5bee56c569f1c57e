"""esc is "back": out of a filter (cleared) to its table, otherwise to the area shown before."""

from __future__ import annotations

from typing import Any

from tests.flow.conftest import SIZE, screen_name, settle, until


async def open_mandates(pilot: Any) -> Any:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen")
    await pilot.press("6")
    await until(
        pilot,
        lambda: screen_name(app) == "MandatesScreen" and app.screen.query_one("#mandates").total,
    )
    return app.screen.query_one("#mandates")


async def test_esc_in_a_filter_clears_it_and_returns_to_the_table(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_mandates(pilot)
        await pilot.press("slash", *"zzz")
        await until(pilot, lambda: table.total == 0, what="nothing matches")
        await pilot.press("escape")
        await until(pilot, lambda: table.total == 1, what="filter cleared")
        assert screen_name(app) == "MandatesScreen"
        assert app.screen.query_one("#filter").value == ""
        assert app.focused is table
        await pilot.press("escape")  # then back, to where we came from
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")


async def test_esc_pops_the_history(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("T")  # the delegation tree of the selected mandate
        await until(pilot, lambda: screen_name(app) == "DelegationScreen")
        await settle(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen", what="back to Mandates")
        await pilot.press("9", "8")
        await until(pilot, lambda: screen_name(app) == "LedgerScreen")
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "BackupsScreen")
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")


async def test_digits_switch_areas_from_the_delegation_screen(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("7")
        await until(pilot, lambda: screen_name(app) == "DelegationScreen")
        await settle(pilot)
        await pilot.press("8")
        await until(pilot, lambda: screen_name(app) == "LedgerScreen", what="8 switched areas")
