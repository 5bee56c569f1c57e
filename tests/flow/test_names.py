"""People read names, not ids: long names are cut in the middle, whole on the detail pane."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input

from caracal.flow.text import middle_ellipsis
from tests.flow.conftest import SIZE, ok, screen_name, until
from tests.flow.test_mandates import open_mandates
from tests.support.cli import run_cli

LONG = "orchestrator-fleet-worker-17"


def line(app: Any, table_id: str, y: int) -> str:
    return str(app.screen.query_one(table_id).render_line(y).text)


def test_middle_ellipsis_keeps_both_ends() -> None:
    assert middle_ellipsis(LONG, 18) == "orchestr…worker-17"
    assert middle_ellipsis("w1", 18) == "w1" and len(middle_ellipsis(LONG, 7)) == 7


async def test_mandates_name_issuer_and_subject(world: dict[str, str], app_factory: Any) -> None:
    ok("principal", "register", "--kind", "worker", "--name", LONG)
    ok(
        "policy", "create", "--principal", LONG, "--max-validity", "1h",
        "--resource", "provider:github:resource:*", "--action", "provider:github:action:*",
    )  # fmt: skip
    ok(
        "mandate", "issue", "--issuer", "alice", "--subject", LONG, "--ttl", "10m",
        "--resource", "provider:github:resource:repos", "--action", "provider:github:action:read",
    )  # fmt: skip
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await until(pilot, lambda: "orchestr…worker-17" in line(app, "#mandates", 1), what="name")
        assert "alice" in line(app, "#mandates", 1) and "pr_" not in line(app, "#mandates", 1)
        assert "alice" in line(app, "#mandates", 2) and "orch " in line(app, "#mandates", 2)
        assert LONG in str(app.screen.query_one("#detail").render())  # whole on the detail pane


async def test_ledger_names_principals_and_keeps_the_type(
    world: dict[str, str], app_factory: Any
) -> None:
    refused = run_cli(
        "mandate", "delegate", world["root"], "--subject", "alice", "--ttl", "5m",
        "--resource", "provider:github:resource:repos", "--action", "provider:github:action:read",
    )  # fmt: skip
    assert refused.code != 0  # an orchestrator may not grant to a human: recorded, refused
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("8")
        await until(pilot, lambda: screen_name(app) == "LedgerScreen")
        await until(
            pilot, lambda: "mandate.delegation_refused" in line(app, "#events", 1), what="type"
        )
        await until(pilot, lambda: " alice " in line(app, "#events", 1), what="principal name")
        assert world["alice"] not in line(app, "#events", 1)
        detail = str(app.screen.query_one("#event").render())
        assert f"principal alice ({world['alice']})" in detail


async def test_validate_names_the_caller_and_the_subject(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_mandates(pilot)
        await until(pilot, lambda: "orch" in line(app, "#mandates", 1))
        await pilot.press("v")
        await until(pilot, lambda: screen_name(app) == "ValidateMandateModal")
        app.screen.query_one("#caller", Input).focus()
        await pilot.press(*"w1", "ctrl+s")

        def decision() -> str:
            return str(app.screen.query_one("#decision").render())

        await until(pilot, lambda: "CALLER_MISMATCH" in decision(), what="decision")
        assert "caller w1 is not the subject orch" in decision() and "pr_" not in decision()
