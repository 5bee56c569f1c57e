"""The Ledger's `/` filter reads event types, reason codes and principal names (any case), and
says what it did not understand; follow mode shows as a badge."""

from __future__ import annotations

from typing import Any

from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
from tests.flow.conftest import SIZE, screen_name, until
from tests.support.cli import run_cli


def status(app: Any) -> str:
    return str(app.screen.query_one("#filter-status").render())


async def filter_to(pilot: Any, text: str) -> None:
    await pilot.press("slash", "ctrl+a", "ctrl+k", *text)


async def test_ledger_filter_words(world: dict[str, str], app_factory: Any) -> None:
    run_cli(
        "mandate",
        "validate",
        world["root"],
        "--action",
        "provider:github:action:comment",
        "--resource",
        "provider:github:resource:repos",
    )
    with Caracal.open("demo") as caracal:
        denials = caracal.ledger.count(LedgerFilter(types=["validation.denied"]))
        orch = caracal.ledger.count(LedgerFilter(principal_id=world["orch"]))
    assert denials == 1 and orch > 0
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("8")
        await until(pilot, lambda: screen_name(app) == "LedgerScreen")
        table = app.screen.query_one("#events")
        await until(pilot, lambda: table.loaded and table.total > 1)

        for text, total in [
            ("DENIED", denials),
            ("validation.denied", denials),
            ("action_out_of_scope", denials),
            ("ORCH", orch),
        ]:
            await filter_to(pilot, text)
            await until(
                pilot,
                lambda total=total: table.total == total and f"{total} match" in status(app),
                what=text,
            )
            assert "not understood" not in status(app)

        await filter_to(pilot, "zzz")
        await until(pilot, lambda: "0 matches" in status(app), what="0 matches")
        assert "not understood: 'zzz'" in status(app) and table.total == 0

        badge = lambda: str(app.screen.query_one("#follow-badge").render())  # noqa: E731
        await pilot.press("escape")  # clears the filter, back on the table
        assert "● LIVE" in badge()
        await pilot.press("f")
        await until(pilot, lambda: "paused" in badge())
        await pilot.press("f")
        await until(pilot, lambda: "● LIVE" in badge())
