"""Mandates: a paged list with filters and search, details, and every mandate action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Select, Static

from caracal.core.scopes import short_scope
from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.paged_table import Column, PagedTable, Row

COMMANDS = [
    ("Issue a mandate", "issue"),
    ("Validate the selected mandate", "validate"),
    ("Delegate the selected mandate", "delegate"),
    ("Revoke the selected mandate", "revoke"),
    ("Show the selected mandate's token", "token"),
    ("Show the delegation tree", "graph"),
]
STATUS_STYLE = {
    "active": "green",
    "revoked": "red",
    "expired": "yellow",
    "pending": "cyan",
    "blocked": "magenta",
}
NAME_WIDTH = 18
NO_MANDATES = "No mandates yet. Press i to issue one."
NO_MATCH = "No mandates match. Clear the filter with esc, or press i to issue one."
STATUSES = [
    ("any status", ""),
    ("active", "active"),
    ("pending", "pending"),
    ("blocked", "blocked"),
    ("expired", "expired"),
    ("revoked", "revoked"),
]


@dataclass
class MandatePages:
    """The mandates matching the filters, a page at a time (runs in a worker)."""

    app: Any
    subject: str | None
    status: str | None
    search: str | None

    def fetch(self, offset: int, limit: int) -> list[Row]:
        return self.app.mandates.listing(  # type: ignore[no-any-return]
            subject_ref=self.subject,
            status=self.status,
            search=self.search,
            limit=limit,
            offset=offset,
        )

    def count(self) -> int:
        return int(
            self.app.mandates.count(
                subject_ref=self.subject, status=self.status, search=self.search
            )
        )


class MandatesScreen(AreaScreen):
    AREA = "mandates"
    BINDINGS = [
        Binding("i", "issue", "Issue", id="mandate-issue"),
        Binding("v", "validate", "Validate", id="mandate-validate"),
        Binding("d", "delegate", "Delegate", id="mandate-delegate"),
        Binding("x", "revoke", "Revoke", id="mandate-revoke"),
        Binding("t", "token", "Token", id="mandate-token"),
        Binding("T", "graph", "Tree", id="mandate-graph"),
    ]
    DEFAULT_CSS = """
    MandatesScreen #detail { height: 7; border-top: solid $primary 30%; padding: 0 1; }
    MandatesScreen #count { color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str] = {}
        self._search_pending = False
        self.principals: list[dict[str, Any]] = []

    def compose_area(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="/ search id, scope or principal name", id="filter")
            yield Select(STATUSES, value="", allow_blank=False, id="status-filter")
            yield Select([("any subject", "")], value="", allow_blank=False, id="subject-filter")
        yield Static("", id="count")
        yield PagedTable(
            self._columns(),
            empty=NO_MANDATES,
            count_later=True,
            id="mandates",
        )
        yield Static("Select a mandate to see it here.", id="detail", markup=False)

    def _columns(self) -> list[Column]:
        from caracal.core.durations import relative
        from caracal.flow.text import middle_ellipsis

        def name(key: str) -> Any:
            # Long names cut in the middle (their ends tell them apart); whole on the detail pane.
            return lambda r: middle_ellipsis(self.names.get(r[key], r[key]), NAME_WIDTH)

        return [
            Column("id", "ID", 25),
            Column(
                "status", "STATUS", 8, style=lambda r: STATUS_STYLE.get(r.get("status", ""), "")
            ),
            Column("issuer", "ISSUER", NAME_WIDTH, render=name("issuer_id")),
            Column("subject", "SUBJECT", NAME_WIDTH, render=name("subject_id")),
            Column("expires", "EXPIRES", 12, render=lambda r: relative(r["expires_at"])),
            Column("depth", "DEPTH", 5),
            Column("parent", "PARENT", 25, render=lambda r: r["parent_id"] or "-"),
            Column(
                "actions",
                "ACTIONS",
                0,
                render=lambda r: ",".join(short_scope(a).split(":", 1)[-1] for a in r["actions"]),
            ),
        ]

    @property
    def table(self) -> PagedTable:
        return self.query_one("#mandates", PagedTable)

    def load(self) -> None:
        # The table and the principal names load side by side: names fill in when they come.
        self._refresh_table()
        caracal = self.context.caracal
        run_in_background(
            self,
            caracal.principals.all,
            done=self._principals_loaded,
            group="principals",
            description="principals",
        )
        # What a search matches against is read once the first page is painted (on the first
        # visit of a large workspace it reads every mandate, and would hold the page up).
        self._search_pending = True

    def _principals_loaded(self, principals: list[dict[str, Any]]) -> None:
        self.principals = principals
        self.names = {p["id"]: p["name"] for p in principals}
        subject = self.query_one("#subject-filter", Select)
        current = subject.value
        subject.set_options([("any subject", ""), *((p["name"], p["id"]) for p in principals)])
        subject.value = current if current in self.names else ""
        self.table.refresh()
        # The page may have come first: its selected row's detail names its principals now.
        self.on_paged_table_highlighted(PagedTable.Highlighted(self.table, self.table.current_row))
        if not isinstance(self.focused, Input | Select):  # never take it from a filter being typed
            self.table.focus()

    def _wanted_source(self) -> MandatePages:
        """The pages the filters ask for now."""
        status = self.query_one("#status-filter", Select).value
        subject = self.query_one("#subject-filter", Select).value
        search = self.query_one("#filter", Input).value.strip()
        return MandatePages(
            self.context.caracal,
            subject if isinstance(subject, str) and subject else None,
            status if isinstance(status, str) and status else None,
            search or None,
        )

    def _refresh_table(self) -> None:
        source = self._wanted_source()
        filtered = any((source.subject, source.status, source.search))
        self.table.empty = NO_MATCH if filtered else NO_MANDATES
        self.table.set_source(source)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._refresh_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.table.focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id not in ("status-filter", "subject-filter") or self.table.source is None:
            return
        if self.table.source == self._wanted_source():
            return  # a list telling its value when it is mounted: that page is already loading
        self._refresh_table()

    def on_paged_table_loaded(self, event: PagedTable.Loaded) -> None:
        if self._search_pending:
            self._search_pending = False
            # After the frame that paints the page: a worker reading every mandate holds the
            # interpreter for most of its run, and would slow that frame down.
            self.call_after_refresh(
                run_in_background,
                self,
                self.context.caracal.mandates.prepare_search,
                done=lambda _: self.flow.freeze_heap(),
                group="search",
                description="search",
            )
        self.query_one("#count", Static).update(
            f"{event.total}+ mandates, counting…" if event.counting else f"{event.total} mandate(s)"
        )

    def on_paged_table_highlighted(self, event: PagedTable.Highlighted) -> None:
        row = event.row
        detail = self.query_one("#detail", Static)
        if row is None:
            detail.update("")
            return
        from caracal.core.durations import when

        detail.update(
            f"{row['id']}  [{row['status']}]  {self.names.get(row['issuer_id'], row['issuer_id'])} → "
            f"{self.names.get(row['subject_id'], row['subject_id'])}\n"
            f"valid {when(row['not_before'])} … {when(row['expires_at'])}   depth left {row['depth']}"
            f"   parent {row['parent_id'] or '-'}\n"
            f"resources: {', '.join(row['resources'])}\nactions:   {', '.join(row['actions'])}"
            + (
                f"\nrevoked: {row['revoked_reason'] or 'no reason given'}"
                if row.get("revoked_at")
                else ""
            )
        )

    def on_paged_table_selected(self, event: PagedTable.Selected) -> None:
        self.action_validate()

    # ---- actions ---------------------------------------------------------------------------
    def _selected(self) -> Row | None:
        row = self.table.current_row
        if row is None:
            self.app.notify("Select a mandate first.", severity="warning")
        return row

    def _after(self, message: str) -> Any:
        def finish(result: Any) -> None:
            if result is None:
                return
            self.remember(message.format(result=result))
            self.app.notify(message.format(result=result))
            self.load()

        return finish

    def action_issue(self) -> None:
        from caracal.flow.modals.mandate_issue import IssueMandateModal

        def show(principals: list[dict[str, Any]]) -> None:
            self.app.push_screen(
                IssueMandateModal(principals), self._after("Issued mandate {result.id}")
            )

        if self.principals:
            show(self.principals)
            return
        # `i` pressed before the principals arrived: read them first, or the form would open
        # with nobody to choose.
        caracal = self.context.caracal
        run_in_background(self, caracal.principals.all, done=show, description="Issue a mandate")

    def action_validate(self) -> None:
        row = self._selected()
        if row is None:
            return
        from caracal.flow.modals.mandate_validate import ValidateMandateModal

        caracal = self.context.caracal
        run_in_background(
            self,
            caracal.providers.scopes,
            done=lambda scopes: self.app.push_screen(ValidateMandateModal(row, scopes, self.names)),
        )

    def action_delegate(self) -> None:
        row = self._selected()
        if row is None:
            return
        from caracal.flow.modals.mandate_delegate import DelegateMandateModal

        caracal = self.context.caracal

        def offered(options: Any) -> None:
            if options.problem is not None:  # refused before a form is filled in for nothing
                self.flow.show_problem(options.problem, title="Cannot delegate")
                return
            self.app.push_screen(
                DelegateMandateModal(row, options), self._after("Delegated as {result.id}")
            )

        run_in_background(
            self, lambda: caracal.mandates.delegation_options(row["id"]), done=offered
        )

    def action_revoke(self) -> None:
        row = self._selected()
        if row is None:
            return
        from caracal.flow.modals.mandate_revoke import RevokeMandateModal

        caracal = self.context.caracal

        def look() -> tuple[list[dict[str, Any]], str | None]:
            preview = caracal.mandates.preview_revocation(row["id"])
            return preview, caracal.mandates.nothing_to_revoke(preview)

        def previewed(found: tuple[list[dict[str, Any]], str | None]) -> None:
            preview, problem = found
            if problem is not None:
                self.flow.show_problem(problem, title="Already revoked")
                return
            self.app.push_screen(
                RevokeMandateModal(preview, self.names),
                self._after("Revoked {result.mandate_id} and its descendants"),
            )

        run_in_background(self, look, done=previewed)

    def action_token(self) -> None:
        row = self._selected()
        if row is None:
            return
        from caracal.flow.modals.token import TokenModal

        caracal = self.context.caracal
        run_in_background(
            self,
            lambda: caracal.mandates.get(row["id"])["token"],
            done=lambda token: self.app.push_screen(TokenModal(row["id"], token)),
        )

    def action_graph(self) -> None:
        row = self._selected()
        if row is None:
            return
        self.flow.focus_mandate = row["id"]
        self.flow.goto("delegation")


SCREEN = MandatesScreen
