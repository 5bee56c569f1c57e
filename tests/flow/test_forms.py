"""Forms through the keyboard: enter on the last field submits, the keys are shown in the
dialog, esc asks before throwing edits away, and q quits the same way from everywhere."""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer

from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, screen_name, settle, until


def names() -> list[str]:
    with Caracal.open("demo") as caracal:
        return sorted(p["name"] for p in caracal.principals.all())


async def open_register(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen")
    await pilot.press("4")
    await until(pilot, lambda: app.screen.query_one("#principals").row_count == 4)
    await pilot.press("n")
    await until(pilot, lambda: screen_name(app) == "RegisterPrincipalModal")
    await settle(pilot)


async def test_enter_on_the_last_field_submits(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_register(pilot)
        await pilot.press("tab", *"quinn", "enter")  # kind -> name -> email (q is typed)
        assert app.focused is not None and app.focused.id == "email"
        await pilot.press("enter")  # the last field: submits, never lands on Cancel
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen", what="saved")
        await settle(pilot)
    assert "quinn" in names()


async def test_a_form_shows_its_own_keys(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_register(pilot)
        hint = str(app.screen.query_one("#form-keys").render())
        assert "ctrl+s submit · esc cancel · tab next" in hint
        assert app.screen.query_one(Footer).display
        keys = {key for key, shown in app.screen.active_bindings.items() if shown.binding.show}
        assert {"ctrl+s", "escape"} <= keys
        assert "s" not in keys and "x" not in keys  # not the screen's keys behind the dialog


async def test_esc_asks_before_discarding_edits(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_register(pilot)
        await pilot.press("escape")  # nothing typed: closes at once
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "RegisterPrincipalModal")
        await settle(pilot)
        await pilot.press("tab", *"dave", "escape")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal", what="asked")
        await pilot.press("n")  # keep editing
        await until(pilot, lambda: screen_name(app) == "RegisterPrincipalModal")
        assert app.screen.query_one("#name").value == "dave"
        await pilot.press("escape", "y")
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")
        await settle(pilot)
    assert "dave" not in names()


async def test_q_outside_a_text_field_quits_the_same_from_a_dialog(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_register(pilot)
        assert app.focused is not None and app.focused.id == "kind"
        await pilot.press("tab", *"erin", "shift+tab")  # edits, then off the text field
        await pilot.press("q")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal", what="asked to quit")
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "RegisterPrincipalModal")
        await pilot.press("ctrl+c")  # the same question
        await until(pilot, lambda: screen_name(app) == "ConfirmModal")
        await pilot.press("y")
        await settle(pilot)
    assert app.return_code in (0, None) and not app.is_running
