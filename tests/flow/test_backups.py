"""Backups through the keyboard: plain and locked archives, verification (with the lock key
when locked), and restore into a new workspace with the offer to switch to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caracal.services.backup.archive_check import verify_archive
from caracal.services.backup.envelope import locked
from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceManager
from tests.flow.conftest import SIZE, ok, screen_name, settle, until

KEY = "correct horse battery"


def text(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def open_backups(pilot: Any, total: int) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
    await pilot.press("9")
    await until(
        pilot,
        lambda: (
            screen_name(app) == "BackupsScreen" and app.screen.query_one("#archives").total == total
        ),
        what=f"{total} archives listed",
    )


def facts(name: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    with Caracal.open(name) as caracal:
        principals = sorted((p["id"], p["name"], p["kind"]) for p in caracal.principals.all())
        mandates = sorted(
            (m["id"], m["subject_id"], m["status"]) for m in caracal.mandates.listing()
        )
    return principals, mandates


async def test_create_plain_and_locked_then_verify(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_backups(pilot, 0)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "CreateBackupModal")
        await pilot.press("ctrl+s")  # no lock key: a plain archive
        await until(
            pilot, lambda: app.screen.query_one("#archives").total == 1, what="plain archive"
        )
        assert "Written" in text(app, "#outcome")

        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "CreateBackupModal")
        await pilot.press(*"too short", "tab", *"too short")
        await until(pilot, lambda: "at least 12" in text(app, "#key-problem"), what="short key")
        await pilot.press(
            "shift+tab", "ctrl+a", "ctrl+k", *KEY, "tab", "ctrl+a", "ctrl+k", *KEY[:-1], "x"
        )
        await until(pilot, lambda: "differ" in text(app, "#key-problem"), what="mismatch")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "differ" in text(app, "#form-error"))
        # Said once: on the form's error line, not again under the fields.
        assert "differ" not in text(app, "#key-problem")
        await pilot.press("backspace", KEY[-1], "enter")
        await until(
            pilot, lambda: app.screen.query_one("#archives").total == 2, what="locked archive"
        )
        newest = app.screen.query_one("#archives").current_row
        assert newest["locked"] and newest["file"].endswith(".locked")

        await pilot.press("v")  # locked: the key is asked for
        await until(pilot, lambda: screen_name(app) == "VerifyArchiveModal")
        await pilot.press(*"not the right key", "enter")
        await until(pilot, lambda: "Wrong lock key" in text(app, "#form-error"), what="wrong key")
        await pilot.press("ctrl+a", "ctrl+k", *KEY, "enter")
        await until(pilot, lambda: screen_name(app) == "BackupsScreen")
        await until(pilot, lambda: text(app, "#outcome").startswith("OK"), what="locked verified")
        assert "secrets included" in text(app, "#outcome")

        await pilot.press("down", "v")  # the plain one: verified at once
        await until(
            pilot, lambda: "secrets omitted" in text(app, "#outcome"), what="plain verified"
        )
        assert text(app, "#outcome").startswith("OK")
        await settle(pilot)
    folder = WorkspaceManager().paths("demo").backups
    archives = sorted(folder.glob("demo-*.tar.gz*"))
    assert [locked(p) for p in archives] == [False, True]
    assert verify_archive(archives[0]).ok and verify_archive(archives[1], lock_key=KEY).ok


async def test_restore_a_locked_archive_and_switch_to_it(
    world: dict[str, str], app_factory: Any
) -> None:
    with Caracal.open("demo") as caracal:
        caracal.backups.create(lock_key=KEY)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_backups(pilot, 1)
        await pilot.press("r")
        await until(pilot, lambda: screen_name(app) == "RestoreArchiveModal")
        assert app.screen.query_one("#name").value == "demo-restored"
        await pilot.press("ctrl+a", "ctrl+k", *"Copy", "tab")
        await until(pilot, lambda: "Invalid workspace name" in text(app, "#name-problem"))
        await pilot.press("shift+tab", "ctrl+a", "ctrl+k", *"copy", "enter")  # on to the key
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "lock key" in text(app, "#form-error"), what="key required")
        await pilot.press(*KEY, "enter")
        await until(
            pilot, lambda: screen_name(app) == "ConfirmModal", timeout=30, what="offer to switch"
        )
        assert "copy" in text(app, "#question")
        await pilot.press("y")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await until(pilot, lambda: app.screen.query_one("#status").workspace == "copy")
        await until(
            pilot, lambda: text(app, "#stat-principals .value") == "4", what="restored counts"
        )
        await settle(pilot)
    assert WorkspaceManager().active_name() == "copy"
    assert facts("copy") == facts("demo")


async def test_restore_a_deleted_workspaces_safety_backup(
    world: dict[str, str], home: Path, app_factory: Any
) -> None:
    ok("workspace", "create", "spare")
    with Caracal.open("spare") as caracal:
        caracal.principals.register("human", "bob", None)
    before = facts("spare")
    ok("workspace", "delete", "spare", "--yes")
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_backups(pilot, 1)
        row = app.screen.query_one("#archives").current_row
        assert row["where"] == "home" and row["file"].startswith("spare-")
        await pilot.press("r")
        await until(pilot, lambda: screen_name(app) == "RestoreArchiveModal")
        await pilot.press("ctrl+a", "ctrl+k", *"spare", "enter")  # not locked: enter restores
        await until(pilot, lambda: screen_name(app) == "ConfirmModal", timeout=30)
        await pilot.press("n")  # stay in demo
        await until(pilot, lambda: screen_name(app) == "BackupsScreen")
        await until(pilot, lambda: "into workspace spare" in text(app, "#outcome"))
        await settle(pilot)
    assert WorkspaceManager().active_name() == "demo"
    assert facts("spare") == before
