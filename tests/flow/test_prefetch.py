"""Flow's cold start reads the dashboard's first figures in a forked copy while the UI loads:
they are the store's figures, the copy writes nothing, and the opened workspace's own figures
replace them (or win when they come first)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import text as sql

from caracal.core.pulse_figures import Pulse, from_plain
from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceManager
from tests.flow.conftest import SIZE, mark_onboarded, ok, screen_name, settle, until

# Run in a process of its own: a forked copy is only made when no other thread runs, and a
# test worker has threads.
PREFETCH = """
import json, sys
from caracal.core.pulse_figures import to_plain
from caracal.flow.prefetch import start
found = start(sys.argv[1] if len(sys.argv) > 1 else None)
figures = found.result() if found is not None else None
print(json.dumps({"started": found is not None,
                  "figures": to_plain(figures) if figures is not None else None}))
"""


def prefetch(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PREFETCH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # the copy wrote nothing to the terminal
    answer: dict[str, Any] = json.loads(lines[0])
    return answer


def figures_now(name: str = "demo") -> Pulse:
    with Caracal.open(name) as caracal:
        return caracal.pulse.pulse()


def same_figures(plain: dict[str, Any], pulse: Pulse) -> bool:
    """The same figures, read moments apart (a minute may have turned in between: the
    hour's totals are compared rather than its minutes)."""

    def fixed(p: Pulse) -> tuple[Pulse, int, int]:
        return replace(p, at=0, allowed_per_minute=(), denied_per_minute=()), p.allowed, p.denied

    return fixed(from_plain(plain)) == fixed(pulse)


def test_the_copy_reads_the_stores_figures(world: dict[str, str]) -> None:
    ok("mandate", "validate", world["root"], "--action", "provider:github:action:read",
       "--resource", "provider:github:resource:repos")  # fmt: skip
    answer = prefetch()
    assert answer["started"]
    assert answer["figures"]["principals"] == 4 and answer["figures"]["active_mandates"] == 1
    assert answer["figures"]["busiest"][0]["name"] == "orch"
    assert same_figures(answer["figures"], figures_now())
    assert same_figures(prefetch("demo")["figures"], figures_now())


def test_no_copy_for_a_workspace_still_onboarding_or_missing(home: Path) -> None:
    ok("workspace", "create", "fresh")
    assert prefetch() == {"started": False, "figures": None}  # onboarding shows first
    assert prefetch("nosuch") == {"started": False, "figures": None}
    mark_onboarded("fresh")
    assert prefetch()["started"]


def test_the_copy_can_be_turned_off(world: dict[str, str], monkeypatch: Any) -> None:
    monkeypatch.setenv("CARACAL_FLOW_PREFETCH", "0")
    assert prefetch() == {"started": False, "figures": None}


def test_the_copy_never_upgrades_a_store(world: dict[str, str]) -> None:
    """A store older than the code is the real opening's to upgrade (with its checks): the
    copy answers nothing and leaves the store as it found it."""
    with Caracal.open("demo") as caracal:
        caracal.store.write(
            lambda c: c.execute(sql("DELETE FROM caracal_schema WHERE version = 4"))
        )
    assert prefetch() == {"started": True, "figures": None}
    manager = WorkspaceManager()
    with Caracal(manager, "demo", check_ledger=False, migrate=False) as caracal:
        assert not caracal.store_is_current()
        with caracal.store.read() as conn:
            versions = [r[0] for r in conn.execute(sql("SELECT version FROM caracal_schema"))]
    assert sorted(versions) == [1, 2, 3]


class _Figures:
    """What `caracal flow` hands the app: the copy's figures for a workspace, once."""

    def __init__(self, workspace: str, figures: Any) -> None:
        self.workspace = workspace
        self.figures = figures

    def result(self) -> Any:
        return self.figures

    def cancel(self) -> None:
        return None


def shown(app: Any) -> dict[str, str]:
    return {
        k: str(app.screen.query_one(f"#stat-{k} .value").render())
        for k in ("principals", "active", "events")
    }


async def test_the_dashboard_paints_the_copys_figures_until_its_own_arrive(
    world: dict[str, str],
) -> None:
    from caracal.flow.app import build_app

    real = figures_now()
    early = replace(real, principals=97, active_mandates=98, head_seq=99)
    app = build_app(prefetch=_Figures("demo", early))  # type: ignore[arg-type]
    app.context._lock.acquire()  # the workspace cannot open yet: the copy is first
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen_name(app) == "DashboardScreen")
            await until(pilot, lambda: shown(app)["principals"] == "97", what="early figures")
            assert shown(app) == {"principals": "97", "active": "98", "events": "99"}
            assert not app.context.has_workspace
            app.context._lock.release()
            await until(pilot, lambda: shown(app)["principals"] == "4", what="own figures")
            await settle(pilot)
            assert shown(app)["active"] == "1"
    finally:
        if app.context._lock._is_owned():  # type: ignore[attr-defined]
            app.context._lock.release()


async def test_figures_arriving_after_the_opening_are_ignored(world: dict[str, str]) -> None:
    from caracal.flow.app import build_app

    stale = replace(figures_now(), principals=97)
    app = build_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shown(app)["principals"] == "4", what="own figures")
        app._prefetched(stale)
        await settle(pilot)
        assert shown(app)["principals"] == "4"


async def test_figures_are_withdrawn_when_the_workspace_does_not_open(
    world: dict[str, str], home: Path
) -> None:
    """The opening finds events removed behind Caracal's back: the problem is shown, and the
    figures the copy read from that store (which it does not check) are not."""
    import sqlite3

    from caracal.flow.app import build_app

    early = replace(figures_now(), principals=97)
    with contextlib.closing(sqlite3.connect(home / "workspaces" / "demo" / "store.db")) as db:
        db.execute("DELETE FROM ledger_events WHERE seq = (SELECT max(seq) FROM ledger_events)")
        db.commit()
    app = build_app(prefetch=_Figures("demo", early))  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: "outside caracal" in str(app.screen.query_one("#message").render()).lower(),
            what="the problem",
        )
        await settle(pilot)
        dashboard = app.screen_stack[-2]
        figure = dashboard.query_one("#stat-principals .value")
        assert str(figure.render()) == "…" and dashboard.pulse is None
