"""The ledger's long operations in Flow: a full verify shows its bar moving on the screen and
an export in its dialog; esc (after a yes) stops either with nothing written, focus back on
the events."""

from __future__ import annotations

from typing import Any

import pytest

from caracal.services.workspaces import WorkspaceManager
from tests.flow.conftest import SIZE, screen_name, settle, until
from tests.flow.progress_support import (
    grow,
    held,  # noqa: F401 - the fixture pytestmark uses
    leftovers,
    stop_with_esc,
    watch_moves,
)

pytestmark = pytest.mark.usefixtures("held")

BIG = 300_000  # a full verify walks 120,000 events in well under a second


def text(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def open_ledger(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen")
    await pilot.press("8")
    await until(pilot, lambda: screen_name(app) == "LedgerScreen")
    # The verify on arrival (everything, the first time) ends before the test starts its own.
    await until(pilot, lambda: "Intact" in text(app, "#verify-status"), timeout=120)


async def _back_on_events(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "LedgerScreen", what="the Ledger screen")
    await until(
        pilot,
        lambda: app.focused is not None and app.focused.id == "events",
        what="focus on the events",
    )
    await settle(pilot)


async def test_full_verify_shows_progress_and_esc_stops_it(
    world: dict[str, str], app_factory: Any
) -> None:
    grow(events=BIG)
    remembered = WorkspaceManager().paths("demo").cache / "ledger-verified.json"
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_ledger(pilot)
        before = remembered.read_bytes()
        await pilot.press("v")
        await watch_moves(pilot, "#verify-progress")
        await stop_with_esc(pilot, "Cancel the verification? Nothing will be written.")
        await until(pilot, lambda: "stopped" in text(app, "#verify-status"), what="stopped")
        await _back_on_events(pilot)
        assert not app.screen.query_one("#verify-progress").display
        assert remembered.read_bytes() == before
        await pilot.press("escape")  # nothing runs now: esc goes back again
        await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="back")


async def test_export_shows_progress_and_esc_writes_no_file(
    world: dict[str, str], app_factory: Any
) -> None:
    grow()
    root = WorkspaceManager().paths("demo").root
    before = leftovers(root)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_ledger(pilot)
        await pilot.press("w")
        await until(pilot, lambda: screen_name(app) == "ExportLedgerModal")
        await pilot.press("ctrl+s")
        await watch_moves(pilot, "#op-progress")
        assert text(app, "#op-phase").startswith("Exporting the ledger")
        await stop_with_esc(pilot, "Cancel the export? Nothing will be written.")
        await _back_on_events(pilot)
    assert not (root / "ledger-export.json").exists()
    assert leftovers(root) == before
