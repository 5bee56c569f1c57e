"""80×24: the sidebar folds away and the footer shows whole keys, then `? more`."""

from __future__ import annotations

from typing import Any

from caracal.flow.widgets.footer import FittingFooter, key_width
from tests.flow.conftest import screen_name, settle, until


def footer_keys(app: Any) -> list[Any]:
    from textual.widgets._footer import FooterKey

    return list(app.screen.query_one(FittingFooter).query(FooterKey))


async def test_at_80_columns_the_sidebar_folds_and_the_footer_fits(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("6")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        await settle(pilot)
        assert not app.screen.query_one("#nav").display
        table = app.screen.query_one("#mandates")
        assert table.region.x < 3  # the table starts at the left edge, not after 18 columns
        await until(pilot, lambda: bool(footer_keys(app)), what="footer keys")
        keys = footer_keys(app)
        assert [k.description for k in keys][-1] == "more"
        assert sum(key_width(k) for k in keys) <= 80
        for key in keys:  # none cut: each is drawn whole inside the screen
            assert key.region.right <= 80 and key.region.width >= len(key.description)
        await pilot.press("question_mark")  # the rest is in help
        await until(pilot, lambda: screen_name(app) == "HelpModal")


async def test_at_140_columns_everything_shows(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=(140, 42)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("4")
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")
        await settle(pilot)
        assert app.screen.query_one("#nav").display
        descriptions = [k.description for k in footer_keys(app)]
        assert "more" not in descriptions and "Revoke" in descriptions
        assert descriptions.count("Palette") == 1


def table_lines(table: Any) -> list[str]:
    return [table.render_line(y).text for y in range(2)]


async def test_at_80_columns_the_table_scrolls_sideways_to_every_column(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("6")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        table = app.screen.query_one("#mandates")
        await until(pilot, lambda: table.loaded and table.total > 0, what="mandates")
        await settle(pilot)
        assert app.focused is table
        header, row = table_lines(table)
        assert "SUBJECT" in header and "ACTIONS" not in header and "PARENT" not in header
        for _ in range(3):  # l: one column at a time, the ID column stays put
            await pilot.press("l")
        await settle(pilot)
        header, row = table_lines(table)
        assert header.startswith("ID") and "PARENT" in header and "ISSUER" not in header
        assert row.startswith(world["root"])  # the selected row still says which mandate
        await pilot.press("right", "right", "right")
        await settle(pilot)
        header, row = table_lines(table)
        assert "ACTIONS" in header and "read,write" in row.replace(" ", "")
        for _ in range(6):
            await pilot.press("h")
        await pilot.press("left")
        await settle(pilot)
        assert "ISSUER" in table_lines(table)[0]
        await pilot.press("j", "k")  # rows still move while scrolled
        assert table.cursor == 0
