"""Workspaces through the keyboard: create (validated inline), switch (the whole app follows),
and delete (backup first, locked when a lock key is given; the active workspace is refused
with an explanation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caracal.services.workspaces import WorkspaceManager
from tests.flow.conftest import SIZE, ok, screen_name, settle, until


def text(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def open_workspaces(pilot: Any, total: int) -> None:
    app = pilot.app
    await pilot.press("2")
    await until(
        pilot,
        lambda: (
            screen_name(app) == "WorkspacesScreen"
            and app.screen.query_one("#workspaces").total == total
        ),
        what=f"{total} workspaces listed",
    )


async def test_create_then_switch_and_every_screen_follows(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await open_workspaces(pilot, 1)
        assert app.screen.query_one("#workspaces").current_row["active"]
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "CreateWorkspaceModal")
        await pilot.press(*"Bad Name")
        await until(
            pilot,
            lambda: "Invalid workspace name" in text(app, "#name-problem"),
            what="inline error",
        )
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "Invalid workspace name" in text(app, "#form-error"))
        await pilot.press("ctrl+a", "ctrl+k", *"second")
        await until(pilot, lambda: text(app, "#name-problem") == "", what="error cleared")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen_name(app) == "WorkspacesScreen")
        await until(
            pilot, lambda: app.screen.query_one("#workspaces").total == 2, what="two workspaces"
        )
        assert WorkspaceManager().exists("second") and WorkspaceManager().active_name() == "demo"

        await pilot.press("down")
        await until(
            pilot, lambda: app.screen.query_one("#workspaces").current_row["name"] == "second"
        )
        await pilot.press("u")
        await until(
            pilot,
            lambda: screen_name(app) == "DashboardScreen",
            what="dashboard of the new workspace",
        )
        await until(
            pilot, lambda: app.screen.query_one("#status").workspace == "second", what="status bar"
        )
        await until(
            pilot, lambda: text(app, "#stat-principals .value") == "0", what="second's counts"
        )
        assert WorkspaceManager().active_name() == "second"
        assert app.context.caracal.paths.root == WorkspaceManager().paths("second").root

        await pilot.press("5")
        await until(
            pilot,
            lambda: (
                screen_name(app) == "PoliciesScreen" and app.screen.query_one("#policies").loaded
            ),
        )
        assert app.screen.query_one("#policies").total == 0  # demo has three

        await open_workspaces(pilot, 2)
        rows = [app.screen.query_one("#workspaces").row_at(i) for i in range(2)]
        assert [(r["name"], r["active"]) for r in rows] == [("demo", False), ("second", True)]
        await pilot.press("home", "enter")  # enter on a row switches too
        await until(pilot, lambda: app.screen.query_one("#status").workspace == "demo")
        await until(
            pilot, lambda: text(app, "#stat-principals .value") == "4", what="demo's counts again"
        )
        await settle(pilot)
    assert WorkspaceManager().active_name() == "demo"


async def test_create_and_switch_in_one_go(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await open_workspaces(pilot, 1)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "CreateWorkspaceModal")
        await pilot.press(*"third", "tab", "tab", "space")  # name, store (empty), "switch to it"
        await until(pilot, lambda: app.screen.query_one("#switch").value)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await until(pilot, lambda: app.screen.query_one("#status").workspace == "third")
        await settle(pilot)
    assert WorkspaceManager().active_name() == "third"


async def test_delete_writes_a_backup_and_refuses_the_active_one(
    world: dict[str, str], home: Path, app_factory: Any
) -> None:
    ok("workspace", "create", "spare")
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await open_workspaces(pilot, 2)
        assert app.screen.query_one("#workspaces").current_row["name"] == "demo"
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "ProblemModal", what="explanation")
        assert "Switch to another workspace first" in text(app, "#message")
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "WorkspacesScreen")

        await pilot.press("down")
        await until(
            pilot, lambda: app.screen.query_one("#workspaces").current_row["name"] == "spare"
        )
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "DeleteWorkspaceModal")
        assert "signing key" in text(app, "#loss")  # says plainly what an unlocked one drops
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "WorkspacesScreen")
        assert WorkspaceManager().exists("spare")
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "DeleteWorkspaceModal")
        await pilot.press("ctrl+s")  # no lock key: an unlocked backup, as the dialog said
        await until(
            pilot, lambda: app.screen.query_one("#workspaces").total == 1, what="spare gone"
        )
        await until(pilot, lambda: "its backup is" in text(app, "#outcome"))
        shown = text(app, "#outcome")
        await settle(pilot)
    assert not WorkspaceManager().exists("spare") and WorkspaceManager().exists("demo")
    backups = list((home / "backups").glob("spare-*.tar.gz"))
    assert len(backups) == 1 and str(backups[0]) in shown


async def test_delete_with_a_lock_key_keeps_the_secrets_in_a_locked_backup(
    world: dict[str, str], home: Path, app_factory: Any
) -> None:
    from caracal.services.backup.archive_check import verify_archive

    ok("workspace", "create", "spare")
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await open_workspaces(pilot, 2)
        await pilot.press("down")
        await until(
            pilot, lambda: app.screen.query_one("#workspaces").current_row["name"] == "spare"
        )
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "DeleteWorkspaceModal")
        await pilot.press(*"short", "ctrl+s")  # a bad key: said in place, nothing deleted
        await until(pilot, lambda: "12" in text(app, "#form-error"), what="key error")
        assert WorkspaceManager().exists("spare")
        for _ in "short":
            await pilot.press("backspace")
        await pilot.press(*"keep it safe please", "enter", *"keep it safe please", "enter")
        await until(pilot, lambda: screen_name(app) == "WorkspacesScreen", what="deleted")
        await until(pilot, lambda: "(locked)" in text(app, "#outcome"), what="outcome")
        await settle(pilot)
    assert not WorkspaceManager().exists("spare")
    assert not list((home / "backups").glob("spare-*.tar.gz"))
    [archive] = list((home / "backups").glob("spare-*.tar.gz.locked"))
    report = verify_archive(archive, "keep it safe please")
    assert report.ok and report.locked and report.secrets_included
