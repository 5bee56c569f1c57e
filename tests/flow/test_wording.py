"""Flow's words: empty lists say what to do next, settings read as labels."""

from __future__ import annotations

from typing import Any

from tests.flow.conftest import SIZE, until
from tests.flow.test_policies import open_policies
from tests.flow.test_settings import config_table, open_settings


def first_line(app: Any, table_id: str) -> str:
    return str(app.screen.query_one(table_id).render_line(1).text)


async def test_empty_lists_say_what_to_do_next(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_policies(pilot, 3)
        await pilot.press("slash", *"zzz")
        await until(pilot, lambda: app.screen.query_one("#policies").total == 0)
        assert "No policies match. Clear the filter with esc, or press n" in first_line(
            app, "#policies"
        )
        await pilot.press("escape")  # as the line says: the filter clears
        await until(pilot, lambda: app.screen.query_one("#policies").total == 3, what="cleared")
        await pilot.press("escape", "6")
        await until(pilot, lambda: app.screen.query_one("#mandates").loaded, what="mandates")
        await pilot.press("slash", *"zzz")
        await until(pilot, lambda: app.screen.query_one("#mandates").total == 0)
        assert "Clear the filter with esc, or press i to issue one" in first_line(app, "#mandates")


async def test_settings_show_labels_not_raw_keys(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_settings(app, pilot)
        table = config_table(app)
        assert str(table.get_cell("runtime.redis_url", "key")) == "Runtime: Redis URL"
        assert str(table.get_cell("validation.clock_leeway_seconds", "key")) == (
            "Validation: clock leeway (s)"
        )
