"""Keys pressed just after choosing from a dropdown act on what they pointed at, even when
the data the choice asked for arrives after them."""

from __future__ import annotations

from typing import Any

from textual.widgets import SelectionList

from tests.flow.conftest import SIZE, screen_name, settle, until
from tests.flow.test_mandates import choose, open_mandates

READ = "provider:github:action:read"
WRITE = "provider:github:action:write"


async def test_keys_after_choosing_a_subject_tick_what_they_pointed_at(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("i")
        await until(pilot, lambda: screen_name(app) == "IssueMandateModal")
        actions = app.screen.query_one("#actions", SelectionList)
        choose(app, "issuer", world["alice"])
        choose(app, "subject", world["w1"])
        await until(pilot, lambda: actions.option_count == 3, what="w1's bounds")
        actions.focus()
        await pilot.press("down", "down", "space")  # the third action ticked
        ticked = set(actions.selected)
        # Another subject chosen; its bounds are read while the store is busy (the lock every
        # Flow call takes is held), and the operator goes on typing meanwhile.
        with app.context._lock:
            choose(app, "subject", world["svc"])
            await pilot.pause(0.3)
            actions.focus()
            await pilot.press("up")  # onto the second action
        await settle(pilot)
        await pilot.press("space")
        second = str(actions.get_option_at_index(1).value)
        assert set(actions.selected) == ticked | {second}
        assert actions.highlighted == 1


async def test_a_chosen_subject_is_an_edit_that_esc_asks_about(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await pilot.press("i")
        await until(pilot, lambda: screen_name(app) == "IssueMandateModal")
        choose(app, "issuer", world["alice"])
        choose(app, "subject", world["w1"])
        actions = app.screen.query_one("#actions", SelectionList)
        await until(pilot, lambda: actions.option_count == 3, what="w1's bounds")
        await settle(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal", what="asked first")
        await pilot.press("escape")  # keep the form, with the choices made
        await until(pilot, lambda: screen_name(app) == "IssueMandateModal")
        assert app.screen.query_one("#subject").value == world["w1"]
