"""The dashboard shows the workspace's pulse by name, refreshes live, opens the list behind
each element, says what changed since the last apply, and never re-verifies old events."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from caracal.flow.widgets.pulse import PulseList
from tests.flow.conftest import SIZE, ok, screen_name, settle, until
from tests.support.cli import run_cli

READ = ("--action", "provider:github:action:read", "--resource", "provider:github:resource:repos")
COMMENT = (
    "--action",
    "provider:github:action:comment",
    "--resource",
    "provider:github:resource:repos",
)


def decide(mandate: str, allowed: int, denied: int) -> None:
    for _ in range(allowed):
        ok("mandate", "validate", mandate, *READ)
    for _ in range(denied):
        assert run_cli("mandate", "validate", mandate, *COMMENT).code == 6  # denied


def text(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def options(app: Any, list_id: str) -> list[str]:
    found = app.screen.query_one(f"#{list_id}", PulseList)
    return [
        " ".join(str(found.get_option_at_index(i).prompt).split())
        for i in range(found.option_count)
    ]


def figures(app: Any) -> dict[str, str]:
    return {
        k: text(app, f"#stat-{k} .value") for k in ("principals", "active", "denials", "events")
    }


async def open_dashboard(pilot: Any) -> Any:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen")
    await until(pilot, lambda: "verified" in text(app, "#ledger-status"), what="ledger verified")
    await until(pilot, lambda: figures(app)["principals"] != "…", what="figures")
    await settle(pilot)
    return app


async def test_each_element_shows_its_figures_by_name(
    world: dict[str, str], app_factory: Any
) -> None:
    decide(world["root"], allowed=3, denied=2)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_dashboard(pilot)
        head = app.context.caracal.ledger.head()[0]
        assert figures(app) == {
            "principals": "4",
            "active": "1",
            "denials": "2",
            "events": f"{head:,}",
        }
        assert "3 allowed · 2 denied" in text(app, "DecisionGraph")
        assert options(app, "denials") == ["all denials 2", "ACTION_OUT_OF_SCOPE 2"]
        expiring = options(app, "expiring")
        assert len(expiring) == 1 and re.fullmatch(r"orch in (29m\d*s?|30m)", expiring[0])
        assert options(app, "busiest") == ["orch 5/2"]
        assert re.fullmatch(
            rf"Ledger: verified \d\d:\d\d:\d\d, {head:,} events", text(app, "#ledger-status")
        )
        assert "nothing was applied from a file yet" in text(app, "#drift")
        shown = " ".join(str(w.render()) for w in app.screen.query("Static, Label"))
        assert "pr_" not in shown and "mnd_" not in shown  # names, never ids


async def test_the_figures_refresh_while_the_dashboard_is_open(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_dashboard(pilot)
        assert "0 allowed · 0 denied" in text(app, "DecisionGraph")
        before = text(app, "#ledger-status")
        window = app.context.caracal.pulse.window
        read = window.events_read
        decide(world["root"], allowed=1, denied=1)  # recorded by another process's CLI
        head = app.context.caracal.ledger.head()[0]
        await until(
            pilot,
            lambda: "1 allowed · 1 denied" in text(app, "DecisionGraph"),
            what="live decisions",
        )
        await until(pilot, lambda: f"{head:,} events" in text(app, "#ledger-status"))
        assert text(app, "#ledger-status") != before
        assert options(app, "denials")[0] == "all denials 1"
        assert window.events_read == read + 2  # a refresh reads the new decisions, not the hour


async def test_enter_on_denials_opens_the_ledger_filtered_and_esc_comes_back(
    world: dict[str, str], app_factory: Any
) -> None:
    decide(world["root"], allowed=2, denied=1)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_dashboard(pilot)
        app.screen.query_one("#denials").focus()
        await pilot.press("enter")  # the first option: every denial
        await until(pilot, lambda: screen_name(app) == "LedgerScreen", what="Ledger")
        table = app.screen.query_one("#events")
        await until(pilot, lambda: table.loaded and table.total == 1, what="only denials")
        assert app.screen.query_one("#filter").value == "denied"
        assert table.row_at(0)["type"] == "validation.denied"
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="back")

        app.screen.query_one("#busiest").focus()
        await pilot.press("enter")  # a principal: the Ledger of that principal, by name
        await until(pilot, lambda: screen_name(app) == "LedgerScreen")
        await until(pilot, lambda: app.screen.query_one("#filter").value == "orch")


async def test_enter_on_an_expiring_mandate_opens_mandates_filtered_to_it(
    world: dict[str, str], app_factory: Any
) -> None:
    soon = ok(
        "mandate", "issue", "--issuer", "alice", "--subject", "w1", "--ttl", "10m", *READ
    ).stdout.strip()
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_dashboard(pilot)
        assert [o.split()[0] for o in options(app, "expiring")] == ["w1", "orch"]  # soonest first
        app.screen.query_one("#expiring").focus()
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        table = app.screen.query_one("#mandates")
        await until(pilot, lambda: table.total == 1 and table.row_at(0)["id"] == soon)
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")

        app.screen.query_one("#stat-active").focus()  # the count opens the mandates it counts
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(app) == "MandatesScreen")
        await until(pilot, lambda: table.total == 2 and app.screen.query_one("#filter").value == "")
        assert app.screen.query_one("#status-filter").value == "active"


async def test_drift_since_the_last_apply(
    world: dict[str, str], app_factory: Any, tmp_path: Path
) -> None:
    path = tmp_path / "demo.yaml"
    ok("export", "--output", str(path))
    ok("apply", "-f", str(path), "--yes")
    ok("principal", "register", "--kind", "worker", "--name", "by-hand")
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_dashboard(pilot)
        await until(pilot, lambda: "Changed since last apply (1)" in text(app, "#drift"))
        assert "principal by-hand" in text(app, "#drift")
        app.screen.query_one("#drift").focus()
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(app) == "DriftModal")
        assert "principal by-hand" in text(app, "#changes")
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")


async def test_a_second_visit_verifies_only_the_new_events(
    world: dict[str, str], app_factory: Any
) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_dashboard(pilot)
        pulse = app.context.caracal.pulse
        walked = pulse.events_walked
        await pilot.press("8")
        await until(pilot, lambda: screen_name(app) == "LedgerScreen")
        await settle(pilot)
        await pilot.press("1")  # back, nothing new: nothing walked
        await until(pilot, lambda: screen_name(app) == "DashboardScreen")
        await settle(pilot)
        assert pulse.events_walked == walked
        before = app.context.caracal.ledger.head()[0]
        decide(world["root"], allowed=2, denied=0)
        new = app.context.caracal.ledger.head()[0] - before
        await pilot.press("6", "1")
        await until(pilot, lambda: pulse.last_check.head_seq == before + new, what="checked")
        await settle(pilot)
        assert pulse.events_walked == walked + new
        assert f"{before + new:,} events" in text(app, "#ledger-status")


async def test_the_dashboard_fits_80x24_with_whole_labels(
    world: dict[str, str], app_factory: Any
) -> None:
    decide(world["root"], allowed=2, denied=1)
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dashboard(pilot)
        screen = app.screen
        elements = ["#stat-principals", "#stat-active", "#stat-denials", "DecisionGraph"]
        elements += ["#denials", "#expiring", "#busiest", "#ledger-status", "#drift"]
        for selector in elements:
            region = screen.query_one(selector).region
            assert region.width and region.right <= 80 and region.bottom <= 23, selector
        for label in screen.query("#area Label, #ledger-status"):
            if not label.display or not label.parent.display:
                continue
            shown = str(label.render())
            assert label.region.height == 1, shown  # not wrapped
            assert len(shown) <= label.content_region.width, shown  # not cut
        titles = [str(t.render()) for t in screen.query(".column-title")]
        assert titles == ["Denials by reason (1 h)", "Expiring within 1 h", "Busiest (all/denied)"]
        assert options(app, "denials")[1] == "ACTION_OUT_OF_SCOPE 1"
