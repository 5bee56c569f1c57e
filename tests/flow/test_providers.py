"""Providers: add, edit, catalog, test and remove from the keyboard, then check the store."""

from __future__ import annotations

from typing import Any

from caracal.services.facade import Caracal
from caracal.store import secret_rows
from tests.flow.conftest import SIZE, discard_form, screen_name, settle, until
from tests.support.http_server import fake_provider


def text_of(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def open_providers(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
    await pilot.press("3")
    await until(
        pilot,
        lambda: (
            screen_name(app) == "ProvidersScreen"
            and app.screen.query_one("#providers").row_count > 0
        ),
        what="providers listed",
    )


async def choose_row(pilot: Any, name: str) -> None:
    """Filter down to one provider, as a user would, and land on it in the table."""
    app = pilot.app
    await pilot.press("slash", "ctrl+u", *name, "enter")
    await until(
        pilot,
        lambda: (
            app.screen.query_one("#providers").row_count == 1 and name in text_of(app, "#detail")
        ),
        what=f"{name} selected",
    )


async def open_form(pilot: Any, key: str, modal: str, first_field: str) -> None:
    """Press `key` and wait until the form is up with `first_field` taking keys."""
    app = pilot.app
    await pilot.press(key)
    await until(
        pilot,
        lambda: screen_name(app) == modal and app.focused.id == first_field,
        what=f"{modal} ready",
    )


async def save_form(pilot: Any, screen_after: str) -> None:
    await pilot.press("ctrl+s")
    await until(pilot, lambda: screen_name(pilot.app) == screen_after, what="form closed")
    await settle(pilot)


async def test_add_edit_catalog_test_and_remove_a_scoped_provider(world, app_factory) -> None:  # type: ignore[no-untyped-def]
    with fake_provider(expected_auth="Bearer first-secret") as api:
        app = app_factory()
        async with app.run_test(size=SIZE) as pilot:
            await open_providers(pilot)

            # Add: name, URL, default service type, bearer auth, credential, catalog lines.
            await open_form(pilot, "n", "AddProviderModal", "name")
            await pilot.press(*"billing", "tab", *api.url, "tab", "tab")
            await pilot.press("enter", "down", "down", "enter")  # auth: none -> bearer
            await pilot.press("tab", "tab", *"first-secret", "tab", "tab")
            await pilot.press(*"invoices=Invoices", "enter", *"customers", "tab")
            await pilot.press(
                *"invoices:read:GET:/invoices", "enter", *"invoices:void:post", "enter"
            )
            await pilot.press(*"customers:read")
            await until(pilot, lambda: text_of(app, "#form-error") == "", what="form is valid")
            await save_form(pilot, "ProvidersScreen")
            await choose_row(pilot, "billing")
            assert "invoices" in text_of(app, "#detail")

            # Test the connection: healthy with the credential just stored.
            await pilot.press("v")
            await until(pilot, lambda: "billing: healthy" in text_of(app, "#probe-result"))
            assert "HTTP 200" in text_of(app, "#probe-result")
            assert api.requests[-1]["authorization"] == "Bearer first-secret"

            # Edit: new health path and credential; the server now wants the new credential.
            await open_form(pilot, "e", "EditProviderModal", "base-url")
            for _ in range(4):  # from the base URL to service type, auth, header name, credential
                await pilot.press("tab")
            await pilot.press(*"second-secret", "tab", "tab", "end", *"health")
            await save_form(pilot, "ProvidersScreen")
            api.expected_auth = "Bearer second-secret"

            # Catalog: append a resource and its action.
            await open_form(pilot, "o", "ProviderCatalogModal", "resources")
            await pilot.press("enter", *"refunds=Refunds", "tab")
            await pilot.press("enter", *"refunds:create:POST:/refunds")
            await save_form(pilot, "ProvidersScreen")
            await until(pilot, lambda: "refunds" in text_of(app, "#detail"))

            # Unhealthy: the server starts failing.
            await pilot.press("v")
            await until(pilot, lambda: "billing: healthy" in text_of(app, "#probe-result"))
            api.status = 503
            await pilot.press("v")
            await until(pilot, lambda: "billing: unhealthy" in text_of(app, "#probe-result"))
            assert "HTTP 503" in text_of(app, "#probe-result")
            assert api.requests[-1]["path"] == "/health"

        with Caracal.open("demo") as caracal:
            view = caracal.providers.get("billing")
            assert (view.spec.mode, view.spec.auth, view.credential) == ("scoped", "bearer", "set")
            assert view.spec.base_url == api.url
            assert view.spec.health_path == "/health"
            assert caracal.providers.credential("billing") == "second-secret"
            assert [(r.resource_id, r.description) for r in view.spec.resources] == [
                ("invoices", "Invoices"),
                ("customers", ""),
                ("refunds", "Refunds"),
            ]
            assert [
                (a.resource_id, a.action_id, a.method, a.path_prefix) for a in view.spec.actions
            ] == [
                ("invoices", "read", "GET", "/invoices"),
                ("invoices", "void", "POST", "/"),
                ("customers", "read", "*", "/"),
                ("refunds", "create", "POST", "/refunds"),
            ]

        # Remove: declining keeps it; confirming removes it and its credential.
        app = app_factory()
        async with app.run_test(size=SIZE) as pilot:
            await open_providers(pilot)
            await choose_row(pilot, "billing")
            await pilot.press("x")
            await until(pilot, lambda: screen_name(app) == "ConfirmModal")
            await pilot.press("n")
            await until(pilot, lambda: screen_name(app) == "ProvidersScreen")
            await settle(pilot)
            with Caracal.open("demo") as caracal:
                assert caracal.providers.get("billing").spec.name == "billing"
            await pilot.press("x")
            await until(pilot, lambda: screen_name(app) == "ConfirmModal")
            await pilot.press("y")
            await until(pilot, lambda: app.screen.query_one("#providers").row_count == 0)
            await settle(pilot)
    with Caracal.open("demo") as caracal:
        assert [v.spec.name for v in caracal.providers.all()] == ["github"]
        with caracal.store.read() as conn:
            assert secret_rows.get(conn, "provider/billing/credential") is None


async def test_a_bad_base_url_is_explained_inline_and_nothing_is_saved(world, app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_providers(pilot)
        await open_form(pilot, "n", "AddProviderModal", "name")
        await pilot.press(*"ftpsite", "tab", *"ftp://files.example.com")
        await until(
            pilot,
            lambda: "Invalid base URL 'ftp://files.example.com'" in text_of(app, "#form-error"),
            what="inline URL error",
        )
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "AddProviderModal"
        await discard_form(pilot, "ProvidersScreen")
    with Caracal.open("demo") as caracal:
        assert [v.spec.name for v in caracal.providers.all()] == ["github"]


async def test_dropping_auth_needs_the_stored_credential_cleared(world, app_factory) -> None:  # type: ignore[no-untyped-def]
    from caracal.core.providers import ProviderSpec

    with Caracal.open("demo") as caracal:
        caracal.providers.add(
            ProviderSpec("billing", "https://billing.example.com", auth="bearer"), "tok"
        )
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_providers(pilot)
        await choose_row(pilot, "billing")
        await open_form(pilot, "e", "EditProviderModal", "base-url")
        await pilot.press("tab", "tab", "enter", "up", "up", "enter")  # auth: bearer -> none
        await until(
            pilot, lambda: "tick 'Clear the stored credential'" in text_of(app, "#form-error")
        )
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen_name(app) == "EditProviderModal"
        await pilot.press("tab", "tab", "tab", "space")  # header name, credential, the checkbox
        await until(pilot, lambda: text_of(app, "#form-error") == "", what="form is valid")
        await save_form(pilot, "ProvidersScreen")
    with Caracal.open("demo") as caracal:
        view = caracal.providers.get("billing")
        assert (view.spec.auth, view.credential) == ("none", "none")
        with caracal.store.read() as conn:
            assert secret_rows.get(conn, "provider/billing/credential") is None
