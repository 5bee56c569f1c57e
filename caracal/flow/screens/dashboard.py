"""Dashboard: the workspace's pulse, live, by name. Every element opens the list behind it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import OptionList

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.pulse import (
    DRIFT,
    DecisionGraph,
    Drilled,
    Figure,
    Link,
    PulseColumn,
    PulseList,
    middle,
    target,
)

if TYPE_CHECKING:
    from caracal.core.pulse_figures import Pulse
    from caracal.core.state_diff import Plan
    from caracal.services.pulse import LedgerCheck

COMMANDS = [("Verify the ledger now", "verify")]
REFRESH_SECONDS = 2.0
DRIFT_EVERY = 5  # ticks: the declarative state is read less often than the figures
PACE = 10  # the timer spends at most 1/PACE of the time refreshing (a large, busy ledger)
# Other filters of the areas opened from here, reset so the figures and the list agree.
RESET_FILTERS = {
    "ledger": {"type-filter": ""},
    "mandates": {"status-filter": "", "subject-filter": ""},
}


class DashboardScreen(AreaScreen):
    AREA = "dashboard"
    HOME = "#area DecisionGraph"
    AUTO_FOCUS = HOME
    BINDINGS = [Binding("enter", "open", "Open the list behind it", id="dashboard-open")]
    DEFAULT_CSS = """
    DashboardScreen #headline { height: 1; margin-bottom: 1; }
    DashboardScreen.-narrow #stat-events { display: none; }  /* the ledger line has it */
    DashboardScreen #columns { height: auto; margin-top: 1; }
    DashboardScreen #ledger-status { margin-top: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._ticks = 0
        self._follow_up = False  # after the next figures: check the ledger and the drift
        self._busy: set[str] = set()  # refreshes in flight (a slow one is never queued twice)
        self._failed: set[str] = set()  # refreshes that failed: the timer leaves them be
        self._next: dict[str, float] = {}  # when the timer may run each refresh again
        self.drift: Plan | None = None
        self.pulse: Pulse | None = None

    def compose_area(self) -> ComposeResult:
        with Horizontal(id="headline"):
            yield Figure("principals", "stat-principals", Drilled("principals"))
            yield Figure(
                "active mandates",
                "stat-active",
                Drilled("mandates", "", {"status-filter": "active"}),
            )
            yield Figure("denied (1 h)", "stat-denials", Drilled("ledger", "denied"))
            yield Figure("ledger events", "stat-events", Drilled("ledger"))
        yield DecisionGraph()
        with Horizontal(id="columns"):
            yield PulseColumn("Denials by reason (1 h)", "denials")
            yield PulseColumn("Expiring within 1 h", "expiring")
            yield PulseColumn("Busiest (all/denied)", "busiest")
        yield Link("Ledger: not checked yet", "ledger", id="ledger-status")
        yield Link("Changes since the last apply: …", DRIFT, id="drift")

    def on_mount(self) -> None:
        # AreaScreen.on_mount (the first load) runs after this one: Textual calls the handler
        # of every class in the MRO.
        self.set_interval(REFRESH_SECONDS, self._tick)

    # ---- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        self._ticks = 0
        # The figures first: the ledger check and the drift start once they are painted, so
        # that the first frame with real counts does not wait behind them.
        self._follow_up = True
        self._refresh_pulse()

    def _tick(self) -> None:
        if self.app.screen is not self or not self.context.has_workspace:
            return  # hidden, or under a dialog: no work for figures nobody sees
        self._ticks += 1
        self._refresh_pulse(paced=True)
        self.verify_if_moved(paced=True)
        if self._ticks % DRIFT_EVERY == 0:
            self._refresh_drift(paced=True)

    def _once(
        self, key: str, work: Any, done: Any, *, locked: bool = True, paced: bool = False
    ) -> None:
        """Run `work` unless it is still running. `paced` (the timer): not after a failure
        until the next visit, and on a slow store at most a tenth of the time."""
        now = time.monotonic()
        if key in self._busy:
            return
        if paced and (key in self._failed or now < self._next.get(key, 0.0)):
            return
        self._busy.add(key)
        self._failed.discard(key)

        def finished(result: Any) -> None:
            self._busy.discard(key)
            self._next[key] = now + PACE * (time.monotonic() - now)
            done(result)

        def failed(message: str) -> None:
            self._busy.discard(key)
            self._failed.add(key)
            self.flow.show_problem(message)

        run_in_background(
            self, work, done=finished, failed=failed, group=key, description=key, locked=locked
        )

    def _refresh_pulse(self, *, paced: bool = False) -> None:
        # Outside the workspace lock (it only reads, on its own connection): the first count
        # of a very busy hour takes seconds, and must not hold up the other areas.
        pulse = self.context.caracal.pulse.pulse
        self._once("pulse", pulse, self._show_pulse, paced=paced, locked=False)

    def _refresh_drift(self, *, paced: bool = False) -> None:
        drift = self.context.caracal.declarative.drift
        self._once("drift", drift, self._show_drift, paced=paced)

    def verify_if_moved(self, *, paced: bool = False) -> None:
        """Verify what was recorded since the last check; nothing when the head has not moved.
        Not under the workspace lock: a first, full check of a large ledger takes seconds and
        must not hold up the other areas."""
        pulse = self.context.caracal.pulse
        if pulse.last_check is None:
            self.query_one("#ledger-status", Link).update("Ledger: verifying…")
        self._once("verify", pulse.check_ledger, self._show_check, locked=False, paced=paced)

    def _check_and_drift(self) -> None:
        self.verify_if_moved()
        self._refresh_drift()

    def action_verify(self) -> None:
        """The palette's "verify now": the head, its signature and copies, checked now."""
        check = self.context.caracal.pulse.check_ledger
        self._once("verify", lambda: check(again=True), self._show_check, locked=False)

    # ---- painting --------------------------------------------------------------------------
    def show_prefetched(self, pulse: Pulse) -> None:
        """Figures read before the workspace opened here (see caracal.flow.prefetch): painted
        now, replaced by the opened workspace's own a moment later (never over them)."""

        def paint() -> None:
            if self.pulse is None and not self.flow.open_failed:
                self._paint_pulse(pulse)

        self.call_after_refresh(paint)  # once composed: they may come before the first frame

    def forget_prefetched(self) -> None:
        """Back to the placeholders: the workspace did not open, so no figure stands."""
        if self.pulse is not None and not self.context.has_workspace:
            self.pulse = None
            self.refresh(recompose=True)

    def _show_pulse(self, pulse: Pulse) -> None:
        if self._follow_up:
            # After the frame with these figures: their workers (imports, a walk of the
            # ledger) would otherwise hold the interpreter while it is being painted.
            self._follow_up = False
            self.call_after_refresh(self._check_and_drift)
        self._paint_pulse(pulse)

    def _paint_pulse(self, pulse: Pulse) -> None:
        from caracal.core.durations import relative

        self.pulse = pulse
        people = "principal" if pulse.principals == 1 else "principals"
        mandates = "active mandate" if pulse.active_mandates == 1 else "active mandates"
        events = "ledger event" if pulse.head_seq == 1 else "ledger events"
        self.query_one("#stat-principals", Figure).set(pulse.principals, people)
        self.query_one("#stat-active", Figure).set(pulse.active_mandates, mandates)
        self.query_one("#stat-denials", Figure).set(pulse.denied)
        self.query_one("#stat-events", Figure).set(pulse.head_seq, events)
        aggregated = pulse.denied - sum(pulse.denied_per_minute)
        self.query_one(DecisionGraph).show(
            pulse.allowed_per_minute, pulse.denied_per_minute, aggregated
        )
        lists = {
            key: self.query_one(f"#{key}", PulseList) for key in ("denials", "expiring", "busiest")
        }
        width = lists["denials"].text_width
        denials = [("all denials", pulse.denied, "ledger:denied")] * bool(pulse.denied)
        denials += [(code, n, f"ledger:{code}") for code, n in pulse.denials_by_reason]
        lists["denials"].show(
            [(_row(label, f"{n:,}", width), key) for label, n, key in denials],
            "None in the last hour.",
        )
        width = lists["expiring"].text_width
        lists["expiring"].show(
            [
                (
                    _row(m.subject, relative(m.expires_at, pulse.at), width),
                    f"mandates:{m.mandate_id}",
                )
                for m in pulse.expiring
            ],
            "None within the hour.",
        )
        width = lists["busiest"].text_width
        lists["busiest"].show(
            [
                (
                    _row(p.name, f"{p.decisions:,}/{p.denied:,}", width),
                    # The Ledger's filter reads a name as one word; an id always works.
                    f"ledger:{p.name if p.name.split() == [p.name] else p.principal_id}",
                )
                for p in pulse.busiest
            ],
            "None in the last hour.",
        )

    def _show_check(self, check: LedgerCheck) -> None:
        at = check.verified_at.strftime("%H:%M:%S")
        if check.ok:
            text = f"Ledger: [green]verified[/green] {at}, {check.head_seq:,} events"
            if check.since and check.walked:  # an incremental check: what it walked
                text += f" ({check.walked:,} new since the last check)"
        else:
            text = f"Ledger: [red b]NOT VERIFIED[/red b] (checked {at}) — {escape(check.problem or '')}"
        self.query_one("#ledger-status", Link).update(text)

    def _show_drift(self, drift: Plan | None) -> None:
        self.drift = drift
        link = self.query_one("#drift", Link)
        if drift is None:
            link.update("Changes since the last apply: nothing was applied from a file yet")
            return
        if not drift.changes:
            link.update("Changed since last apply (0): the workspace is as the file says")
            return
        listed = escape(", ".join(f"{c.op} {c.kind} {c.name}" for c in drift.changes))
        link.update(f"[yellow]Changed since last apply ({len(drift.changes)})[/yellow]: {listed}")

    # ---- opening what is behind an element -------------------------------------------------
    def action_open(self) -> None:
        focused = self.focused
        if isinstance(focused, PulseList):
            focused.action_select()
        elif isinstance(focused, DecisionGraph | Figure | Link):
            focused.action_open()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if isinstance(event.option_list, PulseList):
            event.stop()
            drilled = target(event.option.id)
            if drilled is not None:
                self.on_drilled(drilled)
            return
        super().on_option_list_option_selected(event)

    def on_drilled(self, message: Drilled) -> None:
        message.stop()
        if message.area == DRIFT:
            self._open_drift()
            return
        filters = {**RESET_FILTERS.get(message.area, {}), **message.choices}
        view = {"filters": {**filters, "filter": message.search}}
        flow = self.flow
        if flow.is_screen_installed(message.area):
            flow.get_screen(message.area).apply_view(view)  # type: ignore[attr-defined]
        else:
            flow.saved_views[message.area] = view  # applied when the screen is built
        flow.goto(message.area)

    def _open_drift(self) -> None:
        from caracal.flow.modals.drift import DriftModal

        self.app.push_screen(DriftModal(self.drift))


def _row(name: str, figure: str, width: int) -> str:
    """A name (middle-ellipsised to what is left) and its figure, right-aligned."""
    room = max(width - len(figure) - 1, 4)
    return f"{middle(name, room):<{room}} {figure}"


SCREEN = DashboardScreen
