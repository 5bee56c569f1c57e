"""Ledger: the live event table with filters, integrity verification and export."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, ProgressBar, Select, Static

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.paged_table import Column, PagedTable, Row

COMMANDS = [
    ("Verify everything (events, tree, state)", "verify"),
    ("Verify the new events", "verify_new"),
    ("Export the ledger", "export"),
]
TYPES = [
    ("every event", ""),
    ("validations", "validation."),
    ("denials", "validation.denied"),
    ("mandates", "mandate."),
    ("refusals", "mandate.issue_refused"),
    ("principals", "principal."),
    ("policies", "policy."),
    ("providers", "provider."),
    ("backups", "backup."),
]


@dataclass
class LedgerPages:
    app: Any
    types: list[str] = field(default_factory=list)
    search: str = ""
    query: Any = None  # the search words as the facade read them (after the first page)

    def _filter(self) -> Any:
        from caracal.services.ledger_reads import LedgerFilter

        if self.query is None:
            self.query = self.app.ledger.parse_query(self.search)
        query = self.query
        return LedgerFilter(
            types=query.types or self.types,
            principal_id=query.principal_id,
            id_prefix=query.id_prefix,
            reason_code=query.reason_code,
        )

    def fetch(self, offset: int, limit: int) -> list[Row]:
        flt = self._filter()
        if self.query.not_understood:  # a word Flow cannot read matches nothing, visibly
            return []
        return self.app.ledger.events(flt, limit=limit, offset=offset)  # type: ignore[no-any-return]

    def count(self) -> int:
        flt = self._filter()
        return 0 if self.query.not_understood else int(self.app.ledger.count(flt))


class LedgerScreen(AreaScreen):
    AREA = "ledger"
    BINDINGS = [
        Binding("v", "verify", "Verify all", id="ledger-verify"),
        Binding("w", "export", "Export to a file", id="ledger-export"),
        Binding("f", "follow", "Follow", id="ledger-follow"),
    ]
    DEFAULT_CSS = """
    LedgerScreen #head { height: auto; color: $text-muted; }
    LedgerScreen #ledger-line { height: 1; }
    LedgerScreen #follow-badge { width: auto; margin-right: 2; }
    LedgerScreen #filter-status { width: 1fr; color: $text-muted; }
    LedgerScreen #verify-bar { height: auto; }
    LedgerScreen ProgressBar { width: 40; }
    LedgerScreen #event { height: 5; border-top: solid $primary 30%; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.following = True
        self.names: dict[str, str] = {}
        self._stop: Any = None  # threading.Event of a full verify in progress

    def compose_area(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(
                placeholder="/ denied, an event type, a REASON_CODE, a principal, mnd_… or pr_…",
                id="filter",
            )
            yield Select(TYPES, value="", allow_blank=False, id="type-filter")
        with Horizontal(id="ledger-line"):
            yield Static("", id="follow-badge")
            yield Static("", id="filter-status")
        yield Static("Head: …", id="head")
        with Horizontal(id="verify-bar"):
            yield Static("", id="verify-status")
            yield ProgressBar(total=100, show_eta=False, id="verify-progress")
        yield PagedTable(
            self._columns(),
            empty="No events match. Clear the filter with esc, or choose every event.",
            count_later=True,  # counting every denial would hold up the page that lists them
            id="events",
        )
        yield Static("", id="event", markup=False)

    def _columns(self) -> list[Column]:
        from caracal.core.durations import when
        from caracal.flow.text import middle_ellipsis

        def principal(row: Row) -> str:
            ident = row["principal_id"]
            return middle_ellipsis(self.names.get(ident) or ident, 20) if ident else ""

        return [
            Column("seq", "SEQ", 9),
            Column("ts", "TIME", 20, render=lambda r: when(r["ts"] / 1e6)),
            Column("type", "TYPE", 28),  # mandate.delegation_refused, whole
            Column(
                "reason_code",
                "REASON",
                26,
                style=lambda r: "red" if r["type"].endswith(("denied", "refused")) else "",
            ),
            Column("principal_id", "PRINCIPAL", 20, render=principal),
            Column("mandate_id", "MANDATE", 0),
        ]

    @property
    def table(self) -> PagedTable:
        return self.query_one("#events", PagedTable)

    def on_mount(self) -> None:
        self.query_one("#verify-progress", ProgressBar).display = False
        self._show_follow()
        # AreaScreen.on_mount (which loads the area) runs after this one: Textual calls the
        # handler of every class in the MRO, so calling super() here would load it twice.
        self.set_interval(2.0, self._follow_tick)

    def load(self) -> None:
        self._refresh_table()
        self.table.focus()
        run_in_background(
            self,
            self.context.caracal.principals.all,
            done=self._principals_loaded,
            group="principals",
            description="principals",
        )
        self._show_head()
        self.action_verify_new()

    def _principals_loaded(self, principals: list[dict[str, Any]]) -> None:
        self.names = {p["id"]: p["name"] for p in principals}
        self.table.refresh()
        self.on_paged_table_highlighted(PagedTable.Highlighted(self.table, self.table.current_row))

    def _show_head(self) -> None:
        """The signed head and every copy kept outside the store."""
        caracal = self.context.caracal

        def shown(status: Any) -> None:
            from caracal.core.durations import when

            head = status.head
            copies = " · ".join(
                f"{c.source}: {'[green]' if c.ok else '[red b]'}{c.state}[/]" for c in status.copies
            )
            self.query_one("#head", Static).update(
                f"Head: {head.size} events · root {head.root[:16]}… · signed "
                f"{when(head.ts_us / 1e6)} · key sha256:{(status.key_sha256 or '?')[:16]}…\n"
                f"{copies or 'no copy outside the store'}"
            )

        run_in_background(self, caracal.ledger.head_status, done=shown, group="head")

    def _refresh_table(self) -> None:
        type_value = self.query_one("#type-filter", Select).value
        types = [type_value] if isinstance(type_value, str) and type_value else []
        self.table.set_source(
            LedgerPages(self.context.caracal, types, self.query_one("#filter", Input).value)
        )

    def _follow_tick(self) -> None:
        """Live table: while the cursor sits on the newest event, new events appear on top."""
        if (
            self.following
            and self.table.cursor == 0
            and self.table.loaded
            and self.app.screen is self
        ):
            self.table.reload()

    def action_follow(self) -> None:
        self.following = not self.following
        self._show_follow()

    def _show_follow(self) -> None:
        self.query_one("#follow-badge", Static).update(
            "[green b]● LIVE[/] new events appear on top (f pauses)"
            if self.following
            else "[yellow b]paused[/] (f follows again)"
        )

    def on_paged_table_loaded(self, event: PagedTable.Loaded) -> None:
        from textual.markup import escape

        source = event.table.source
        query = getattr(source, "query", None)
        parts = []
        if query is not None and query.not_understood:
            words = ", ".join(repr(w) for w in query.not_understood)
            parts.append(
                f"[yellow]not understood: {escape(words)}[/] (try denied, an event type, a "
                "REASON_CODE, a principal name, mnd_… or pr_…)"
            )
        if getattr(source, "search", "").strip() or getattr(source, "types", None):
            parts.append(
                "0 matches"
                if event.total == 0
                else f"{event.total}+ matches, counting…"
                if event.counting
                else f"{event.total} match(es)"
            )
        self.query_one("#filter-status", Static).update(" · ".join(parts))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._refresh_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.table.focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "type-filter":
            value = event.value
            types = [value] if isinstance(value, str) and value else []
            source = self.table.source
            if (
                isinstance(source, LedgerPages)
                and source.app is self.context.caracal
                and source.types == types
            ):
                return  # the list telling its value when it is mounted: that page is loading
            self._refresh_table()

    def on_paged_table_highlighted(self, event: PagedTable.Highlighted) -> None:
        import json

        row = event.row
        self.query_one("#event", Static).update(
            ""
            if row is None
            else f"{row['type']}  actor {row['actor']}  hash {row['hash'][:16]}…\n"
            + (
                f"principal {self.names.get(row['principal_id'], '?')} ({row['principal_id']})\n"
                if row.get("principal_id")
                else ""
            )
            + json.dumps(row["payload"], sort_keys=True)
        )

    def action_verify_new(self) -> None:
        self._verify(incremental=True)

    def action_verify(self) -> None:
        self._verify(incremental=False)

    def _verify(self, *, incremental: bool) -> None:
        import threading
        import time

        from caracal.core.progress import Progress, Step

        status = self.query_one("#verify-status", Static)
        bar = self.query_one("#verify-progress", ProgressBar)
        status.update("Verifying… " if incremental else "Verifying… (esc stops) ")
        bar.display = True
        bar.update(progress=0)
        caracal = self.context.caracal
        if self._stop is not None:
            self._stop.set()  # the verify this one replaces
        # Only a full verify (v) can be stopped: the incremental one on arrival is short, and
        # esc then keeps going back as everywhere else.
        stop = self._stop = None if incremental else threading.Event()
        shown = [0.0]

        def report(step: Step) -> None:
            now = time.monotonic()
            if now - shown[0] >= 0.1:
                shown[0] = now
                self.app.call_from_thread(
                    bar.update, total=max(step.total or 1, 1), progress=step.done
                )

        def ended() -> None:
            bar.display = False
            if self._stop is stop:
                self._stop = None

        def stopped() -> None:
            ended()
            status.update("Verification stopped; nothing was written (v starts it again)")

        def failed(message: str) -> None:
            ended()
            status.update("")
            self.flow.show_problem(message)

        def finished(report: Any) -> None:
            from datetime import datetime

            ended()
            at = datetime.now().strftime("%H:%M:%S")
            if not report.ok:
                status.update(f"[red b]TAMPERED[/] (checked {at}): {report.problem}")
            elif report.since and not report.events:
                status.update(
                    f"[green b]Intact[/] at {at}: nothing new since event {report.since} was "
                    "verified (v verifies everything)"
                )
            elif report.since:
                status.update(
                    f"[green b]Intact[/] at {at}: the {report.events} events after event "
                    f"{report.since} extend the verified ledger (v verifies everything)"
                )
            else:
                status.update(
                    f"[green b]Intact[/] at {at}: {report.events} events, the tree matches the "
                    f"signed head, {report.state_rows} state rows match the events"
                )
            self._show_head()

        progress = Progress(report, stop)
        run_in_background(
            self,
            lambda: caracal.ledger.verify(progress, incremental=incremental),
            done=finished,
            failed=failed,
            cancelled=stopped,
            group="verify",
            exclusive=True,
        )

    def action_back(self) -> None:
        """esc during a full verify asks whether to stop it; otherwise it goes back."""
        stop = self._stop
        if stop is None or isinstance(self.focused, Input):
            super().action_back()
            return
        from caracal.flow.modals.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if yes and not stop.is_set():
                stop.set()
                self.query_one("#verify-status", Static).update("Stopping… ")

        self.app.push_screen(
            ConfirmModal(
                "Cancel the verification? Nothing will be written.",
                "The ledger stays as it is, not verified; v starts the verification again.",
                confirm_label="Stop",
            ),
            answered,
        )

    def action_export(self) -> None:
        from caracal.flow.modals.ledger_export import ExportLedgerModal

        def exported(result: Any) -> None:
            if result is not None:
                self.app.notify(f"Exported {result[0]} events to {result[1]}.")
                self.remember(f"exported the ledger to {result[1]}")

        self.app.push_screen(ExportLedgerModal(), exported)


SCREEN = LedgerScreen
