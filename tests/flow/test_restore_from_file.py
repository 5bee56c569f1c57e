"""Restoring a backup kept anywhere, without the CLI: a file picker (a path field that
completes, and a folder listing) in Backups and in Workspaces, the same restore dialog, and
an outcome that names Flow's keys for the next step (rotating keys in Principals)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceManager
from tests.flow.conftest import SIZE, screen_name, settle, until
from tests.flow.test_backups import facts, open_backups, text
from tests.flow.test_workspaces import open_workspaces


def archive_elsewhere(folder: Path) -> Path:
    """A plain backup of demo, moved out of the workspace into a folder of its own."""
    with Caracal.open("demo") as caracal:
        written = caracal.backups.create().path
    folder.mkdir(parents=True)
    return Path(shutil.move(written, folder / written.name))


def path_field(app: Any) -> Input:
    return app.screen.query_one("#archive-path", Input)


async def test_backups_restores_a_file_picked_by_path(
    world: dict[str, str], tmp_path: Path, app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = archive_elsewhere(tmp_path / "elsewhere" / "kept")
    monkeypatch.chdir(tmp_path)
    app = app_factory()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_backups(pilot, 0)  # not in the workspace's folder: r cannot reach it
        await pilot.press("I")
        await until(pilot, lambda: screen_name(app) == "PickArchiveModal", what="picker")
        assert app.focused is path_field(app) and path_field(app).value == f"{tmp_path}/"

        # A path that is not there: said in place, the picker stays.
        await pilot.press("ctrl+a", "ctrl+k", *"/nowhere/at/all.tar.gz", "enter")
        await until(pilot, lambda: "Nothing at /nowhere" in text(app, "#picker-error"))

        # → completes each part of the path; Enter on a folder opens it.
        await pilot.press("ctrl+a", "ctrl+k", *f"{tmp_path}/els")
        await until(
            pilot, lambda: path_field(app)._suggestion.endswith("elsewhere/"), what="suggested"
        )
        await pilot.press("right", *"k")
        await until(pilot, lambda: path_field(app)._suggestion.endswith("kept/"))
        await pilot.press("right", "enter")
        await until(
            pilot,
            lambda: app.screen.query_one("#archive-tree").path == archive.parent,
            what="folder listed",
        )
        await until(pilot, lambda: path_field(app)._suggestion.endswith(archive.name))
        await pilot.press("right", "enter")

        await until(pilot, lambda: screen_name(app) == "RestoreArchiveModal", what="restore form")
        await pilot.press("ctrl+a", "ctrl+k", *"moved", "enter")
        await until(
            pilot, lambda: screen_name(app) == "ConfirmModal", timeout=30, what="offer to switch"
        )
        details = text(app, "#details")
        assert "Principals (4)" in details and "press R" in details, details
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "BackupsScreen")
        await until(pilot, lambda: "into workspace moved" in text(app, "#outcome"))
        outcome = text(app, "#outcome")
        assert "caracal principal rotate-key" not in outcome, outcome
        assert "Principals (4): select it and press R" in outcome, outcome
        await settle(pilot)
    assert WorkspaceManager().active_name() == "demo"
    assert facts("moved")[0] == facts("demo")[0]
    assert archive.exists()  # the picked file is read, never moved or changed


async def test_workspaces_imports_a_file_picked_in_the_list_and_lands_on_principals(
    world: dict[str, str], tmp_path: Path, app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = archive_elsewhere(tmp_path / "exports")
    monkeypatch.chdir(archive.parent)
    app = app_factory()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await open_workspaces(pilot, 1)
        await pilot.press("I")
        await until(pilot, lambda: screen_name(app) == "PickArchiveModal", what="picker")
        tree = app.screen.query_one("#archive-tree")
        await until(pilot, lambda: len(tree.root.children) == 1, what="archive listed")
        await pilot.press("tab")
        await until(pilot, lambda: app.focused is tree, what="list focused")
        await pilot.press("down", "enter")
        await until(pilot, lambda: screen_name(app) == "RestoreArchiveModal", what="restore form")
        assert app.screen.query_one("#name", Input).value == "demo-restored"
        await pilot.press("enter")
        await until(
            pilot, lambda: screen_name(app) == "ConfirmModal", timeout=30, what="offer to switch"
        )
        await pilot.press("y")  # no secrets in the archive: on to Principals to rotate keys
        await until(pilot, lambda: screen_name(app) == "PrincipalsScreen", what="principals")
        await until(pilot, lambda: app.screen.query_one("#status").workspace == "demo-restored")
        await settle(pilot)
    assert WorkspaceManager().active_name() == "demo-restored"
    assert facts("demo-restored")[0] == facts("demo")[0]
