"""Principals: who grants and receives authority, their status, keys and mandates held."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Static

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.row_table import RowTable

COMMANDS = [
    ("Register a principal", "register"),
    ("Rotate the selected principal's key", "rotate"),
    ("Suspend the selected principal", "suspend"),
    ("Activate the selected principal", "activate"),
    ("Revoke the selected principal", "revoke"),
]
STATUS_STYLE = {"active": "green", "suspended": "yellow", "revoked": "red"}
KEY_STYLE = {"active": "green", "retired": "yellow", "revoked": "red"}
COLUMNS = ("NAME", "KIND", "STATUS", "EMAIL", "ID")


def describe_principal(detail: dict[str, Any]) -> Text:
    """The detail pane: who, mandates held, then every signing key."""
    from caracal.core.durations import when

    status = detail["status"]
    held = detail["mandates"]
    text = Text.assemble(
        (detail["name"], "bold"),
        f"  {detail['kind']}  ",
        (status, STATUS_STYLE.get(status, "")),
        f"  {detail.get('email') or 'no email'}  {detail['id']}\n",
        f"registered {when(detail.get('created_at'))}   "
        f"mandates held: {held['held_active']} active of {held['held_total']}   "
        f"issued: {held.get('issued_active', 0)} active of {held.get('issued_total', 0)}\n\n",
        (f"{'KEY':<28} {'STATUS':<9} CREATED\n", "dim"),
    )
    for key in detail["keys"]:
        text.append(f"{key['kid']:<28} ")
        text.append(f"{key['status']:<9}", KEY_STYLE.get(str(key["status"]), ""))
        text.append(f" {when(key['created_at'])}")
        if key.get("retired_at"):
            text.append(f"   ({key['status']} {when(key['retired_at'])})", "dim")
        text.append("\n")
    return text


class PrincipalsScreen(AreaScreen):
    AREA = "principals"
    BINDINGS = [
        Binding("n", "register", "Register", id="principal-register"),
        Binding("R", "rotate", "Rotate key", id="principal-rotate"),
        Binding("s", "suspend", "Suspend", id="principal-suspend"),
        Binding("a", "activate", "Activate", id="principal-activate"),
        Binding("x", "revoke", "Revoke", id="principal-revoke"),
    ]
    DEFAULT_CSS = """
    PrincipalsScreen #principals { height: 1fr; }
    PrincipalsScreen #detail-pane { height: 12; border-top: solid $primary 30%; padding: 0 1; }
    PrincipalsScreen #count { color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.details: dict[str, dict[str, Any]] = {}  # the last detail loaded, by id
        self.focus_id: str | None = None  # the row to land on after the next load

    def compose_area(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="/ filter by name, kind, status, email or id", id="filter")
        yield Static("", id="count")
        table = RowTable(cursor_type="row", zebra_stripes=True, id="principals")
        table.add_columns(*COLUMNS)
        yield table
        with VerticalScroll(id="detail-pane"):
            yield Static("Select a principal to see its keys here.", id="detail")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#principals", DataTable)

    def load(self) -> None:
        run_in_background(
            self, self.context.caracal.principals.all, done=self._loaded, description="principals"
        )

    def want_row(self, key: str) -> None:
        self.focus_id = key

    def _loaded(self, rows: list[dict[str, Any]]) -> None:
        self.rows = {row["id"]: row for row in rows}
        self._fill_table()
        self.table.focus()

    def _fill_table(self) -> None:
        table = self.table
        keep = self.focus_id or self._cursor_id()
        if self.rows:  # a filter typed before the rows came keeps the wanted row for them
            self.focus_id = None
        needle = self.query_one("#filter", Input).value.strip().lower()
        table.clear()
        for row in self.rows.values():
            email = row.get("email") or ""
            searched = (row["name"], row["kind"], row["status"], email, row["id"])
            if needle and not any(needle in text.lower() for text in searched):
                continue
            table.add_row(  # Text, not str: DataTable would read a str as markup
                Text(row["name"]),
                row["kind"],
                Text(row["status"], style=STATUS_STYLE.get(row["status"], "")),
                Text(email or "-"),
                row["id"],
                key=row["id"],
            )
        self.query_one("#count", Static).update(
            f"{table.row_count} of {len(self.rows)} principal(s)"
        )
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        self._load_detail()

    def _cursor_id(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key if key in self.rows else None

    def _load_detail(self) -> None:
        principal_id = self._cursor_id()
        detail = self.query_one("#detail", Static)
        if principal_id is None:
            detail.update("No principal selected.")
            return
        caracal = self.context.caracal

        def shown(data: dict[str, Any]) -> None:
            self.details[data["id"]] = data
            if self._cursor_id() == data["id"]:  # the cursor may have moved on meanwhile
                detail.update(describe_principal(data))

        run_in_background(
            self,
            lambda: caracal.principals.detail(principal_id),
            done=shown,
            group="principal-detail",
            exclusive=True,
            description="principal detail",
        )

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._load_detail()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._fill_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.table.focus()

    # ---- actions ---------------------------------------------------------------------------
    def _selected(
        self, allowed_from: tuple[str, ...] = (), change: str = ""
    ) -> dict[str, Any] | None:
        """The principal under the cursor, when its status allows the change (else a hint)."""
        principal_id = self._cursor_id()
        if principal_id is None:
            self.app.notify("Select a principal first.", severity="warning")
            return None
        row = self.rows[principal_id]
        if allowed_from and row["status"] not in allowed_from:
            self.app.notify(
                f"{row['name']} is {row['status']}; it cannot {change}.", severity="warning"
            )
            return None
        return row

    def _finish(self, principal_id: str, message: str) -> None:
        self.remember(message)
        self.app.notify(message)
        self.focus_id = principal_id
        self.load()

    def action_register(self) -> None:
        from caracal.flow.modals.principal_register import RegisterPrincipalModal

        def registered(principal: Any) -> None:
            if principal is not None:
                self._finish(
                    principal.id,
                    f"Registered {principal.name} ({principal.kind}) as {principal.id}",
                )

        self.app.push_screen(RegisterPrincipalModal(), registered)

    def action_rotate(self) -> None:
        row = self._selected(("active", "suspended"), "have its key rotated")
        if row is None:
            return
        from caracal.flow.modals.principal_rotate import RotateKeyModal

        def rotated(rotation: Any) -> None:
            if rotation is not None:
                fate = "revoked" if rotation.revoked_old else "retired"
                self._finish(
                    row["id"],
                    f"Rotated the key of {row['name']} to {rotation.new_kid} "
                    f"({len(rotation.old_kids)} old key(s) {fate})",
                )

        self.app.push_screen(RotateKeyModal(row), rotated)

    def _holding(self, principal_id: str) -> str:
        held = self.details.get(principal_id, {}).get("mandates")
        if not held:
            return ""
        return (
            f" It holds {held['held_active']} active mandate(s) and issued "
            f"{held.get('issued_active', 0)} that are still active."
        )

    def _change_status(self, row: dict[str, Any], verb: str, question: str, details: str) -> None:
        """Confirm, then call `principals.<verb>` and reload."""
        from caracal.flow.modals.confirm import ConfirmModal

        caracal = self.context.caracal
        change = getattr(caracal.principals, verb)

        def answered(yes: bool | None) -> None:
            if yes:
                run_in_background(
                    self,
                    lambda: change(row["id"]),
                    done=lambda p: self._finish(p.id, f"{p.name} is now {p.status}"),
                    description=f"{verb} principal",
                )

        self.app.push_screen(
            ConfirmModal(question, details, confirm_label=verb.capitalize()), answered
        )

    def action_suspend(self) -> None:
        row = self._selected(("active",), "be suspended")
        if row is not None:
            self._change_status(
                row,
                "suspend",
                f"Suspend {row['name']}?",
                "Mandates it issued or holds stop validating until it is activated again; "
                "meanwhile it can neither grant nor receive authority." + self._holding(row["id"]),
            )

    def action_activate(self) -> None:
        row = self._selected(("suspended",), "be activated")
        if row is not None:
            self._change_status(
                row,
                "activate",
                f"Activate {row['name']}?",
                "Mandates it issued or holds validate again, unless expired or revoked.",
            )

    def action_revoke(self) -> None:
        row = self._selected(("active", "suspended"), "be revoked")
        if row is not None:
            self._change_status(
                row,
                "revoke",
                f"Revoke {row['name']} for good?",
                "Everything it issued or holds stops validating, and it can never grant or "
                "receive authority again." + self._holding(row["id"]) + " This cannot be undone.",
            )


SCREEN = PrincipalsScreen
