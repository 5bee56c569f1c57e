"""First run: onboarding really creates the workspace, the principal and the provider."""

from __future__ import annotations

from pathlib import Path

from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, screen_name, settle, until


async def click_workspace_name(pilot, app) -> None:  # type: ignore[no-untyped-def]
    """Onboarding's first field, once it is there: the screen is current before its form is
    mounted (a click in between found nothing on a loaded CI machine)."""
    await until(pilot, lambda: screen_name(app) == "OnboardingScreen", what="onboarding")
    await until(
        pilot,
        lambda: (
            bool(app.screen.query("#workspace-name"))
            and app.screen.query_one("#workspace-name").region.area > 0
        ),
        what="form",
    )
    await pilot.click("#workspace-name")


async def test_onboarding_creates_everything_and_lands_on_the_dashboard(
    home: Path, app_factory
) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await click_workspace_name(pilot, app)
        await pilot.press(*"demo", "enter")
        await until(
            pilot, lambda: app.screen.query_one("#steps").current == "principal", what="step 2"
        )
        await pilot.press(*"alice", "tab", *"alice@example.com", "enter")
        await until(
            pilot, lambda: app.screen.query_one("#steps").current == "provider", what="step 3"
        )
        await pilot.press(
            *"github", "tab", *"https://api.github.com", "tab", *"repos", "tab", *"read", "enter"
        )
        await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
        await settle(pilot)
    with Caracal.open("demo") as caracal:
        assert [(p["name"], p["kind"], p["email"]) for p in caracal.principals.all()] == [
            ("alice", "human", "alice@example.com")
        ]
        assert caracal.providers.scopes() == [
            "provider:github:resource:repos",
            "provider:github:action:read",
        ]
        state = caracal.paths.flow_state.read_text()
    assert '"done": true' in state


async def test_quitting_halfway_resumes_at_the_next_step(home: Path, app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await click_workspace_name(pilot, app)
        await pilot.press(*"demo", "enter")
        await until(pilot, lambda: app.screen.query_one("#steps").current == "principal")
        await pilot.press("escape")  # quit
    again = app_factory()
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(again) == "OnboardingScreen")
        await until(
            pilot,
            lambda: again.screen.query_one("#steps").current == "principal",
            what="resume at step 2",
        )
        await pilot.press(*"alice", "enter")
        await until(pilot, lambda: again.screen.query_one("#steps").current == "provider")
        await pilot.click("#skip-provider")
        await until(pilot, lambda: screen_name(again) == "DashboardScreen")
    with Caracal.open("demo") as caracal:
        assert [p["name"] for p in caracal.principals.all()] == ["alice"]
        assert caracal.providers.all() == []


async def test_bad_workspace_name_is_explained_inline_and_nothing_is_created(
    home: Path, app_factory
) -> None:  # type: ignore[no-untyped-def]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await click_workspace_name(pilot, app)
        await pilot.press(*"Bad Name")
        await until(
            pilot,
            lambda: (
                "Invalid workspace name" in str(app.screen.query_one("#workspace-error").render())
            ),
        )
        await pilot.press("enter")
        await settle(pilot)
        assert screen_name(app) == "OnboardingScreen"
    assert not (home / "workspaces").exists() or list((home / "workspaces").iterdir()) == []


async def test_the_onboarding_footer_names_each_key_once_and_fits_80_columns(
    home: Path, app_factory
) -> None:  # type: ignore[no-untyped-def]
    from textual.widgets._footer import FooterKey

    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "OnboardingScreen", what="onboarding")
        await until(pilot, lambda: bool(app.screen.query(FooterKey)), what="footer")
        shown = [(k.key_display, k.description) for k in app.screen.query(FooterKey)]
        assert len(shown) == len(set(shown)), shown
        assert sum(1 for _, what in shown if what == "Palette") == 1, shown
