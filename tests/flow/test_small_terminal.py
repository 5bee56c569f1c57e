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
