"""Policies: every principal's upper bound, with create (scopes picked from the catalog) and
deactivate."""

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
    ("Create a policy", "create"),
    ("Deactivate the selected policy", "deactivate"),
]
STATUS_STYLE = {"active": "green", "inactive": "dim"}
STATUSES = [("any status", ""), ("active", "active"), ("inactive", "inactive")]


def principal_name(names: dict[str, str], principal_id: str) -> str:
    return names.get(principal_id) or principal_id


@dataclass
class PolicyPages:
    """The policies matching the filters (runs in a worker)."""

    app: Any
    names: dict[str, str]
    status: str | None
    search: str | None

    def _matching(self) -> list[Row]:
        rows: list[Row] = self.app.policies.all()
        if self.status:
            rows = [r for r in rows if r["status"] == self.status]
        if self.search:
            needle = self.search.lower()
            rows = [
                r
                for r in rows
                if needle in r["id"].lower()
                or needle in principal_name(self.names, r["principal_id"]).lower()
                or any(needle in p for p in (*r["resources"], *r["actions"]))
            ]
        # Newest first, like every other list in Flow.
        return list(reversed(rows))

    def fetch(self, offset: int, limit: int) -> list[Row]:
        return self._matching()[offset : offset + limit]

    def count(self) -> int:
        return len(self._matching())


NO_POLICIES = "No policies yet. Press n to create one."
NO_MATCH = "No policies match. Clear the filter with esc, or press n to create one."


class PoliciesScreen(AreaScreen):
    AREA = "policies"
    BINDINGS = [
        Binding("n", "create", "New policy", id="policy-create"),
        Binding("x", "deactivate", "Deactivate", id="policy-deactivate"),
    ]
    DEFAULT_CSS = """
    PoliciesScreen #detail { height: 6; border-top: solid $primary 30%; padding: 0 1; }
    PoliciesScreen #count { color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str] = {}
        self.principals: list[dict[str, Any]] = []

    def compose_area(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="/ search id, principal or pattern", id="filter")
            yield Select(STATUSES, value="", allow_blank=False, id="status-filter")
        yield Static("", id="count")
        yield PagedTable(self._columns(), empty=NO_POLICIES, id="policies")
        yield Static("Select a policy to see it here.", id="detail", markup=False)

    def _columns(self) -> list[Column]:
        from caracal.core.durations import format_duration

        def patterns(key: str) -> Any:
            return lambda r: ", ".join(short_scope(p) for p in r[key])

        return [
            Column("id", "ID", 21),
            Column(
                "principal",
                "PRINCIPAL",
                14,
                render=lambda r: principal_name(self.names, r["principal_id"]),
            ),
            Column("status", "STATUS", 8, style=lambda r: STATUS_STYLE.get(r["status"], "")),
            Column("max", "MAX VALID", 9, render=lambda r: format_duration(r["max_validity"])),
            Column("depth", "DEPTH", 5, render=lambda r: r["delegation_depth"]),
            Column("resources", "RESOURCES", 0, render=patterns("resources")),
            Column("actions", "ACTIONS", 0, render=patterns("actions")),
        ]

    @property
    def table(self) -> PagedTable:
        return self.query_one("#policies", PagedTable)

    def load(self) -> None:
        caracal = self.context.caracal
        run_in_background(
            self, caracal.principals.all, done=self._principals_loaded, description="principals"
        )

    def _principals_loaded(self, principals: list[dict[str, Any]]) -> None:
        self.principals = principals
        self.names = {p["id"]: p["name"] for p in principals}
        self._refresh_table()
        self.table.focus()

    def _refresh_table(self) -> None:
        status = self.query_one("#status-filter", Select).value
        search = self.query_one("#filter", Input).value.strip()
        filtered = bool(search) or (isinstance(status, str) and bool(status))
        self.table.empty = NO_MATCH if filtered else NO_POLICIES
        self.table.set_source(
            PolicyPages(
                self.context.caracal,
                self.names,
                status if isinstance(status, str) and status else None,
                search or None,
            )
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._refresh_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.table.focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "status-filter" and self.principals:
            self._refresh_table()

    def on_paged_table_loaded(self, event: PagedTable.Loaded) -> None:
        self.query_one("#count", Static).update(
            f"{event.total} polic{'y' if event.total == 1 else 'ies'}"
        )

    def on_paged_table_highlighted(self, event: PagedTable.Highlighted) -> None:
        row = event.row
        detail = self.query_one("#detail", Static)
        if row is None:
            detail.update("")
            return
        from caracal.core.durations import format_duration, when

        ended = f"   deactivated {when(row['deactivated_at'])}" if row["deactivated_at"] else ""
        detail.update(
            f"{row['id']}  [{row['status']}]  for "
            f"{principal_name(self.names, row['principal_id'])}   created "
            f"{when(row['created_at'])}{ended}\n"
            f"mandates valid at most {format_duration(row['max_validity'])}, delegation depth "
            f"at most {row['delegation_depth']}\n"
            f"resources: {', '.join(row['resources'])}\nactions:   {', '.join(row['actions'])}"
        )

    # ---- actions ---------------------------------------------------------------------------
    def action_create(self) -> None:
        from caracal.flow.modals.policy_create import CreatePolicyModal

        caracal = self.context.caracal

        def gather() -> tuple[list[str], list[dict[str, Any]]]:
            return caracal.providers.scopes(), caracal.policies.all()

        def opened(found: tuple[list[str], list[dict[str, Any]]]) -> None:
            scopes, policies = found
            if not scopes:
                self.app.notify(
                    "The catalog is empty: add a provider first; policies bound its scopes.",
                    severity="warning",
                )
                return
            self.app.push_screen(
                CreatePolicyModal(self.principals, scopes, policies), self._created
            )

        run_in_background(self, gather, done=opened, description="policy form data")

    def _created(self, policy: Any) -> None:
        if policy is None:
            return
        who = principal_name(self.names, policy.principal_id)
        self.remember(f"created policy {policy.id} for {who}")
        self.app.notify(f"Created policy {policy.id} for {who}.")
        self.load()

    def action_deactivate(self) -> None:
        row = self.table.current_row
        if row is None:
            self.app.notify("Select a policy first.", severity="warning")
            return
        if row["status"] != "active":
            self.app.notify(f"Policy {row['id']} is already inactive.", severity="warning")
            return
        caracal, policy_id = self.context.caracal, row["id"]
        run_in_background(
            self,
            lambda: caracal.policies.deactivation_impact(policy_id),
            done=self._ask_deactivation,
            description="policy deactivation impact",
        )

    def _ask_deactivation(self, impact: Any) -> None:
        from caracal.flow.modals.confirm import ConfirmModal
        from caracal.flow.modals.policy_deactivate import REVOKE, DeactivatePolicyModal

        who = impact.principal.name
        caracal, policy_id = self.context.caracal, impact.policy.id

        def deactivated(result: Any) -> None:
            revoked = f", revoked {len(result.revoked)} mandate(s)" if result.revoked else ""
            self.remember(f"deactivated policy {policy_id} of {who}{revoked}")
            self.app.notify(f"Deactivated policy {policy_id}{revoked}.")
            self.load()

        def run(revoke: bool) -> None:
            run_in_background(
                self,
                lambda: caracal.policies.deactivate(policy_id, revoke_mandates=revoke),
                done=deactivated,
                description="deactivate policy",
            )

        if impact.needs_warning:
            # Always asked, whatever the confirmation preference: it is a choice.
            self.app.push_screen(
                DeactivatePolicyModal(impact),
                lambda choice: run(choice == REVOKE) if choice else None,
            )
            return
        self.app.push_screen(
            ConfirmModal(
                f"Deactivate policy {policy_id} of {who}?",
                f"Until {who} has a new policy, nothing can be issued or delegated to it. It "
                "holds no mandate that is still valid.",
                confirm_label="Deactivate",
            ),
            lambda yes: run(False) if yes else None,
        )


SCREEN = PoliciesScreen
