"""Backups in Flow on a workspace big enough to watch: each dialog shows its progress bar
moving, and esc (after a yes) stops the operation with nothing written, focus back on the
archives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceManager
from tests.flow.conftest import SIZE, screen_name, settle, until
from tests.flow.progress_support import (
    grow,
    held,  # noqa: F401 - the fixture pytestmark uses
    leftovers,
    stop_with_esc,
    watch_moves,
)
from tests.flow.test_backups import open_backups

pytestmark = pytest.mark.usefixtures("held")


async def _back_on_archives(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "BackupsScreen", what="the Backups screen")
    await until(
        pilot,
        lambda: app.focused is not None and app.focused.id == "archives",
        what="focus on the archives",
    )
    await settle(pilot)


async def test_create_shows_progress_and_esc_leaves_no_archive(
    world: dict[str, str], app_factory: Any
) -> None:
    grow()
    paths = WorkspaceManager().paths("demo")
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_backups(pilot, 0)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "CreateBackupModal")
        await pilot.press("ctrl+s")
        await watch_moves(pilot, "#op-progress")
        assert str(app.screen.query_one("#op-phase").render()).startswith(("Dumping", "Writing"))
        await stop_with_esc(pilot, "Cancel the backup? Nothing will be written.")
        await _back_on_archives(pilot)
        assert app.screen.query_one("#archives").total == 0
    assert leftovers(paths.backups) == []
    assert [p for p in leftovers(paths.cache) if p.startswith("backup-")] == []


def _archive() -> Path:
    with Caracal.open("demo") as caracal:
        return caracal.backups.create().path


async def test_verify_shows_progress_and_esc_stops_it(
    world: dict[str, str], app_factory: Any
) -> None:
    grow()
    archive = _archive()
    before = archive.read_bytes()
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_backups(pilot, 1)
        await pilot.press("v")
        await until(pilot, lambda: screen_name(app) == "VerifyArchiveModal")
        await watch_moves(pilot, "#op-progress")
        await stop_with_esc(pilot, "Cancel the verification? Nothing will be written.")
        await _back_on_archives(pilot)
        assert not str(app.screen.query_one("#outcome").render()).startswith("OK")
    assert archive.read_bytes() == before
    assert leftovers(archive.parent) == [archive.name]


async def test_restore_shows_progress_and_esc_creates_no_workspace(
    world: dict[str, str], home: Path, app_factory: Any
) -> None:
    grow()
    _archive()
    workspaces = leftovers(home / "workspaces")
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_backups(pilot, 1)
        await pilot.press("r")
        await until(pilot, lambda: screen_name(app) == "RestoreArchiveModal")
        await pilot.press("ctrl+s")
        await watch_moves(pilot, "#op-progress")
        await stop_with_esc(pilot, "Cancel the restore? Nothing will be written.")
        await _back_on_archives(pilot)
    assert leftovers(home / "workspaces") == workspaces
    assert not WorkspaceManager().exists("demo-restored")
