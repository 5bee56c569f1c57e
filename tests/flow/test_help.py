"""`?` is an overlay that scrolls to every key, the current area's first, with its own filter."""

from __future__ import annotations

from typing import Any

from tests.flow.conftest import SIZE, screen_name, settle, until


def keymap_text(app: Any) -> str:
    return str(app.screen.query_one("#keymap").render())


async def test_help_scrolls_to_every_area_and_starts_with_the_current_one(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=(140, 42)) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("6", "question_mark")
        await until(pilot, lambda: screen_name(app) == "HelpModal")
        text = keymap_text(app)
        assert text.startswith("Mandates")
        # Readable key names, not Textual's.
        assert "question_mark" not in text and "slash" not in text and "escape" not in text
        for key in ("?", "/", "esc", "ctrl+s"):
            assert f"  {key}" in text or f", {key}" in text, key
        # The last sections (Backups, Logs) are reachable by scrolling.
        body = app.screen.query_one("#help-body")
        assert body.max_scroll_y > 0
        await pilot.press("end")
        await settle(pilot)
        assert body.scroll_y == body.max_scroll_y
        assert "Logs" in text and "Backups" in text
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        assert app.focused is app.screen.query_one("#mandates")


async def test_help_has_its_own_filter_and_esc_clears_it_first(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("question_mark", "slash", *"restore")
        await until(
            pilot, lambda: "Restore" in keymap_text(app) and "Issue" not in keymap_text(app)
        )
        await pilot.press("escape")  # clears the filter, stays in help
        await until(pilot, lambda: "Issue" in keymap_text(app))
        assert screen_name(app) == "HelpModal"
        await pilot.press("slash", *"zzzz")
        await until(pilot, lambda: "No key matches" in keymap_text(app))
        await pilot.press("escape", "escape")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
