"""Dashboard: the workspace at a glance."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Label, Static

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background

COMMANDS = [("Verify the ledger now", "verify")]


class Stat(Vertical):
    DEFAULT_CSS = """
    Stat { border: round $primary 40%; height: 5; padding: 0 0; }
    Stat .value { text-style: bold; content-align: center middle; height: 2; }
    Stat .label { color: $text-muted; content-align: center middle; }
    """

    def __init__(self, label: str, stat_id: str) -> None:
        super().__init__(id=stat_id)
        self.label_text = label

    def compose(self) -> ComposeResult:
        yield Label("…", classes="value")
        yield Label(self.label_text, classes="label")

    def set(self, value: Any) -> None:
        self.query_one(".value", Label).update(str(value))


class DashboardScreen(AreaScreen):
    AREA = "dashboard"
    DEFAULT_CSS = """
    DashboardScreen Grid { grid-size: 5; grid-gutter: 1 1; height: auto; margin-top: 1; }
    DashboardScreen.-narrow Grid { grid-size: 3; }
    DashboardScreen #ledger-status { margin-top: 1; }
    DashboardScreen #recent { height: 1fr; margin-top: 1; }
    """

    def compose_area(self) -> ComposeResult:
        with Grid():
            yield Stat("workspace", "stat-workspace")
            yield Stat("store", "stat-store")
            yield Stat("principals", "stat-principals")
            yield Stat("active mandates", "stat-active")
            yield Stat("denials (1 h)", "stat-denials")
        yield Static("Ledger: not checked yet", id="ledger-status")
        yield Label("Recent activity", classes="section-title")
        yield Static("", id="recent", markup=False)

    def load(self) -> None:
        caracal = self.context.caracal
        run_in_background(self, caracal.overview.summary, done=self._show, description="dashboard")
        self.verify_if_moved()

    def verify_if_moved(self) -> None:
        """A visit re-verifies only when the ledger head moved since the last check."""
        caracal = self.context.caracal

        def checked(head: tuple[int, str]) -> None:
            key = (caracal.name, *head)
            if key not in (self.flow.verified_head, self.flow.checking_head):
                self.flow.checking_head = key
                self.action_verify()
            elif self.flow.ledger_status:
                self.query_one("#ledger-status", Static).update(self.flow.ledger_status)

        run_in_background(self, caracal.ledger.head, done=checked, group="verify-head")

    def _show(self, overview: Any) -> None:
        self.query_one("#stat-workspace", Stat).set(overview.workspace)
        self.query_one("#stat-store", Stat).set(overview.store)
        self.query_one("#stat-principals", Stat).set(overview.principals)
        self.query_one("#stat-active", Stat).set(overview.active_mandates)
        self.query_one("#stat-denials", Stat).set(overview.denials_last_hour)
        from caracal.core.durations import when

        lines = [
            f"{when(e['ts'] / 1e6)}  {e['type']:<24} {e['reason_code'] or '':<24} {e['mandate_id'] or e['principal_id'] or ''}"
            for e in overview.recent
        ]
        self.query_one("#recent", Static).update("\n".join(lines) or "Nothing yet.")

    def action_verify(self) -> None:
        """Verify what was added since the last verified head (a full verify, the first time):
        a visit costs the new events, not the whole ledger."""
        status = self.query_one("#ledger-status", Static)
        status.update("Ledger: verifying…")
        caracal = self.context.caracal

        def shown(result: tuple[Any, tuple[int, str]]) -> None:
            from datetime import datetime

            report, head = result
            self.flow.checking_head = None
            self.flow.verified_head = (caracal.name, *head) if report.ok else None
            at = datetime.now().strftime("%H:%M:%S")
            if report.ok:
                new = f", {report.events} new since the last check" if report.since else ""
                text = (
                    f"Ledger: [green]verified[/green] at {at} — {report.head_seq} events{new}, "
                    "head signed and not rolled back"
                )
            else:
                text = f"Ledger: [red b]NOT VERIFIED[/red b] (checked {at}) — {report.problem}"
            self.flow.ledger_status = text
            # The dashboard on screen may be another instance than the one that asked.
            for screen in {self, self.app.screen}:
                if isinstance(screen, DashboardScreen):
                    screen.query_one("#ledger-status", Static).update(text)

        def work() -> tuple[Any, tuple[int, str]]:
            head = caracal.ledger.head()
            return caracal.ledger.verify(incremental=True), head

        run_in_background(
            self,
            work,
            done=shown,
            group="verify",
            exclusive=True,
        )


SCREEN = DashboardScreen
