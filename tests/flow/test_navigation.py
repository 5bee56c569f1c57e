"""Dashboard, ledger, delegation, help and the palette, through the keyboard."""

from __future__ import annotations

from typing import Any

from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, screen_name, settle, until
from tests.support.cli import run_cli


async def test_dashboard_shows_counts_and_a_verified_ledger(
    world: dict[str, str], app_factory: Any
) -> None:
    run_cli(
        "mandate",
        "validate",
        world["root"],
        "--action",
        "provider:github:action:comment",
        "--resource",
        "provider:github:resource:repos",
    )
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await until(
            pilot, lambda: "verified" in str(app.screen.query_one("#ledger-status").render())
        )
        text = {
            s: str(app.screen.query_one(f"#stat-{s} .value").render())
            for s in ("principals", "active", "denials")
        }
        assert text == {"principals": "4", "active": "1", "denials": "1"}
        denials = app.screen.query_one("#denials")
        assert "ACTION_OUT_OF_SCOPE" in str(denials.get_option_at_index(1).prompt)


async def test_ledger_screen_filters_and_reports_tampering(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("8")
        await until(
            pilot,
            lambda: screen_name(app) == "LedgerScreen" and app.screen.query_one("#events").loaded,
        )
        with Caracal.open("demo") as caracal:
            head = caracal.ledger.head()[0]
        assert app.screen.query_one("#events").total == head
        await pilot.press("slash", *world["root"])
        await until(
            pilot, lambda: app.screen.query_one("#events").total == 1, what="mandate filter"
        )
        await pilot.press("enter", "v")
        await until(pilot, lambda: "Intact" in str(app.screen.query_one("#verify-status").render()))
        with Caracal.open("demo") as caracal:
            caracal.store.write(
                lambda c: c.exec_driver_sql(
                    "UPDATE ledger_events SET actor = 'mallory' WHERE seq = 3"
                )
            )
        await pilot.press("v")
        await until(
            pilot, lambda: "TAMPERED" in str(app.screen.query_one("#verify-status").render())
        )
        assert "event 3" in str(app.screen.query_one("#verify-status").render())


async def test_delegation_tree_from_the_mandates_screen(
    world: dict[str, str], app_factory: Any
) -> None:
    child = run_cli(
        "mandate",
        "delegate",
        world["root"],
        "--subject",
        "w1",
        "--ttl",
        "5m",
        "--resource",
        "provider:github:resource:repos",
        "--action",
        "provider:github:action:read",
    ).stdout.strip()
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("6")
        await until(
            pilot,
            lambda: (
                screen_name(app) == "MandatesScreen" and app.screen.query_one("#mandates").loaded
            ),
        )
        await pilot.press("T")
        await until(pilot, lambda: screen_name(app) == "DelegationScreen")
        await until(
            pilot, lambda: "1 ancestor(s)" in str(app.screen.query_one("#graph-hint").render())
        )
        tree = app.screen.query_one("#graph")
        assert world["root"] in str(tree.root.label) and child in str(tree.root.children[0].label)


async def test_palette_has_a_provider_per_area_and_runs_commands(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: screen_name(app) == "CommandPalette")
        await pilot.press(*"issue a mandate")
        await settle(pilot)
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(
            pilot,
            lambda: screen_name(app) == "IssueMandateModal",
            what="issue form from the palette",
        )
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")


async def test_help_lists_every_binding_and_escape_goes_back(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("question_mark")
        await until(pilot, lambda: screen_name(app) == "HelpModal")
        text = str(app.screen.query_one("#keymap").render())
        for expected in ("ctrl+p", "Palette", "Issue", "Revoke", "esc", "Verify"):
            assert expected in text
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await pilot.press("q")
        await settle(pilot)
    assert app.return_code in (0, None)


async def test_the_dashboard_verifies_again_only_when_the_ledger_moved(
    world: dict[str, str], app_factory: Any, monkeypatch: Any
) -> None:
    from caracal.services.ledger import LedgerService

    calls: list[bool] = []
    real = LedgerService.verify

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(True)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LedgerService, "verify", counted)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        status = lambda: str(app.screen.query_one("#ledger-status").render())  # noqa: E731
        await until(pilot, lambda: "verified" in status())
        await settle(pilot)
        assert len(calls) == 1
        for _ in range(2):
            await pilot.press("2", "1")
            await until(pilot, lambda: screen_name(app) == "DashboardScreen")
            await settle(pilot)
        assert len(calls) == 1 and "verified" in status()  # same head: no new check
        run_cli("principal", "register", "--kind", "worker", "--name", "w2")
        await pilot.press("2", "1")
        await until(pilot, lambda: len(calls) == 2, what="a check of the new event")
        await until(pilot, lambda: "1 new since the last check" in status())
