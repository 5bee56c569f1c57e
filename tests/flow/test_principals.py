"""Principals: register, rotate keys, suspend, activate and revoke from the keyboard, then
check the store."""

from __future__ import annotations

from typing import Any

from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, discard_form, screen_name, settle, until


def text_of(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def open_principals(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
    await pilot.press("4")
    await until(
        pilot,
        lambda: (
            screen_name(app) == "PrincipalsScreen"
            and app.screen.query_one("#principals").row_count > 0
        ),
        what="principals listed",
    )


async def choose_row(pilot: Any, name: str) -> None:
    """Filter down to one principal and wait for its keys in the detail pane."""
    app = pilot.app
    await pilot.press("slash", "ctrl+u", *name, "enter")
    await until(
        pilot,
        lambda: (
            app.screen.query_one("#principals").row_count == 1
            and text_of(app, "#detail").startswith(name + " ")
        ),
        what=f"{name} selected",
    )


async def answer(pilot: Any, key: str) -> None:
    """Answer the confirmation that must be showing, and let the change land."""
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "ConfirmModal", what="confirmation")
    await pilot.press(key)
    await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")
    await settle(pilot)


def stored(name: str) -> dict[str, Any]:
    with Caracal.open("demo") as caracal:
        return caracal.principals.detail(name)


async def test_register_principals_of_two_kinds(world, app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_principals(pilot)
        for kind_steps, name, email in [
            ((), "bob", "bob@example.com"),
            (("down", "down", "down"), "billing-bot", ""),  # human -> service
        ]:
            await pilot.press("n")
            await until(pilot, lambda: app.focused is not None and app.focused.id == "kind")
            if kind_steps:
                await pilot.press("enter", *kind_steps, "enter")
            await pilot.press("tab", *name, "tab", *email, "ctrl+s")
            await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")
            await until(pilot, lambda n=name: text_of(app, "#detail").startswith(n + " "))
        assert app.screen.query_one("#principals").row_count == 6
    with Caracal.open("demo") as caracal:
        registered = {p["name"]: (p["kind"], p["email"]) for p in caracal.principals.all()}
    assert registered["bob"] == ("human", "bob@example.com")
    assert registered["billing-bot"] == ("service", None)


async def test_a_bad_name_is_explained_inline_and_nothing_is_registered(  # type: ignore[no-untyped-def]
    world, app_factory
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_principals(pilot)
        await pilot.press("n")
        await until(pilot, lambda: app.focused is not None and app.focused.id == "kind")
        await pilot.press("tab", *"-nope")
        await until(pilot, lambda: "Invalid principal name" in text_of(app, "#form-error"))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "RegisterPrincipalModal"
        await discard_form(pilot, "PrincipalsScreen")
    with Caracal.open("demo") as caracal:
        assert len(caracal.principals.all()) == 4


async def test_rotate_a_key_then_rotate_revoking_the_old_ones(world, app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_principals(pilot)
        await choose_row(pilot, "w1")
        await pilot.press("R")
        await until(pilot, lambda: app.focused is not None and app.focused.id == "revoke-old")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")
        await until(pilot, lambda: "retired" in text_of(app, "#detail"), what="retired key")
        await settle(pilot)
        assert [k["status"] for k in stored("w1")["keys"]] == ["retired", "active"]

        # Revoking the old keys asks first; saying no leaves the form open and nothing done.
        await pilot.press("R")
        await until(pilot, lambda: app.focused is not None and app.focused.id == "revoke-old")
        await pilot.press("space", "ctrl+s")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal")
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "RotateKeyModal")
        await settle(pilot)
        assert len(stored("w1")["keys"]) == 2
        await pilot.press("ctrl+s")
        await answer(pilot, "y")
        await until(pilot, lambda: "revoked" in text_of(app, "#detail"), what="revoked keys")
    keys = stored("w1")["keys"]
    assert [k["status"] for k in keys] == ["revoked", "revoked", "active"]


async def test_suspend_activate_and_revoke_after_confirming(world, app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_principals(pilot)
        await choose_row(pilot, "w1")

        await pilot.press("s")
        await answer(pilot, "n")
        assert stored("w1")["status"] == "active"
        await pilot.press("s")
        await answer(pilot, "y")
        await until(pilot, lambda: "suspended" in text_of(app, "#detail"))
        assert stored("w1")["status"] == "suspended"

        await pilot.press("a")
        await answer(pilot, "y")
        await until(pilot, lambda: "active" in text_of(app, "#detail").split("\n")[0])
        assert stored("w1")["status"] == "active"

        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal")
        assert "cannot be undone" in text_of(app, "#details")
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen")
        await settle(pilot)
        assert stored("w1")["status"] == "active"
        await pilot.press("x")
        await answer(pilot, "y")
        await until(pilot, lambda: "revoked" in text_of(app, "#detail").split("\n")[0])

        # A revoked principal cannot be activated: Flow says so instead of asking.
        await pilot.press("a")
        await settle(pilot)
        assert screen_name(app) == "PrincipalsScreen"
    assert stored("w1")["status"] == "revoked"
