"""Providers: the systems agents act on, their credentials (status only) and catalogs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Static

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.row_table import RowTable

if TYPE_CHECKING:
    from caracal.services.gateway_calls import GatewayAddress, GatewayCall
    from caracal.services.probe import ProbeResult
    from caracal.services.providers import ProviderView

COMMANDS = [
    ("Add a provider", "add"),
    ("Edit the selected provider", "edit"),
    ("Edit the selected provider's catalog", "catalog"),
    ("Test the selected provider's connection", "test"),
    ("Remove the selected provider", "remove"),
]
CREDENTIAL_STYLE = {"none": "dim", "set": "green", "missing": "red"}
COLUMNS = ("NAME", "MODE", "SERVICE", "AUTH", "CREDENTIAL", "BASE URL")


def describe_catalog(view: ProviderView) -> str:
    """The detail pane: the provider in one line, then each resource with its actions."""
    spec = view.spec
    header = f"{spec.name}  {spec.mode}  {spec.service_type}  auth {spec.auth}"
    if spec.auth_header_name():
        header += f" ({spec.auth_header_name()})"
    header += f"  credential {view.credential}  health {spec.health_path}\n{spec.base_url}"
    if not spec.scoped:
        return header + "\n\nPassthrough: no catalog, so mandates cannot name its scopes."
    lines = [header, ""]
    for resource in spec.resources:
        described = f"  {resource.description}" if resource.description else ""
        lines.append(f"{resource.resource_id}{described}")
        for action in spec.actions:
            if action.resource_id == resource.resource_id:
                lines.append(f"    {action.action_id:<16} {action.method:<7} {action.path_prefix}")
    return "\n".join(lines)


def describe_gateway(provider: str, address: GatewayAddress, calls: list[GatewayCall]) -> Text:
    """The provider's gateway address (and how to start a runtime when none answers there),
    then its recent gated calls."""
    from caracal.core.durations import when

    text = Text("Gateway  ", style="bold")
    text.append(address.url, style="cyan" if address.live else "dim")
    text.append(f"\n{address.hint}", style="dim" if address.live else "yellow")
    if not calls:
        text.append(f"\n\nNo gated calls to {provider} recorded yet.", style="dim")
        return text
    text.append("\n\nRecent gated calls (newest first)\n", style="bold")
    for call in calls:
        verdict = ("allowed", "green") if call.allowed else ("denied", "red")
        times = f" x{call.count}" if call.count > 1 else ""
        text.append(f"{when(call.ts_us / 1e6)}  {call.principal:<14} {call.call:<32} ")
        text.append(verdict[0] + times, style=verdict[1])
        text.append(f"  {call.reason_code}: {call.reason}\n" if call.reason_code else "\n")
    return text


def describe_probe(name: str, result: ProbeResult) -> Text:
    """One line: the verdict, the HTTP status and reason (or why there was none), latency."""
    verdict = ("healthy", "bold green") if result.healthy else ("unhealthy", "bold red")
    latency = f", {result.latency_ms:.0f} ms" if result.status is not None else ""
    return Text.assemble(f"{name}: ", verdict, f" — {result.detail}{latency}")


class ProvidersScreen(AreaScreen):
    AREA = "providers"
    BINDINGS = [
        Binding("n", "add", "New provider", id="provider-add"),
        Binding("e", "edit", "Edit", id="provider-edit"),
        Binding("o", "catalog", "Open catalog", id="provider-catalog"),
        Binding("v", "test", "Test connection", id="provider-test"),
        Binding("x", "remove", "Remove", id="provider-remove"),
    ]
    DEFAULT_CSS = """
    ProvidersScreen #providers { height: 1fr; }
    ProvidersScreen #probe-result { height: auto; min-height: 1; }
    ProvidersScreen #detail-pane { height: 14; border-top: solid $primary 30%; padding: 0 1; }
    ProvidersScreen #count { color: $text-muted; }
    ProvidersScreen #gateway { margin-top: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, ProviderView] = {}
        self.focus_name: str | None = None  # the row to land on after the next load

    def compose_area(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="/ filter by name, service or URL", id="filter")
        yield Static("", id="count")
        table = RowTable(cursor_type="row", zebra_stripes=True, id="providers")
        table.add_columns(*COLUMNS)
        yield table
        yield Static("", id="probe-result")
        with VerticalScroll(id="detail-pane"):
            yield Static("Select a provider to see its catalog here.", id="detail", markup=False)
            yield Static("", id="gateway")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#providers", DataTable)

    def load(self) -> None:
        run_in_background(
            self, self.context.caracal.providers.all, done=self._loaded, description="providers"
        )

    def want_row(self, key: str) -> None:
        self.focus_name = key

    def _loaded(self, views: list[ProviderView]) -> None:
        self.views = {view.spec.name: view for view in views}
        self._fill_table()
        self.table.focus()

    def _fill_table(self) -> None:
        table = self.table
        keep = self.focus_name or self._cursor_name()
        if self.views:  # a filter typed before the rows came keeps the wanted row for them
            self.focus_name = None
        needle = self.query_one("#filter", Input).value.strip().lower()
        table.clear()
        for name, view in sorted(self.views.items()):
            spec = view.spec
            if needle and not any(
                needle in text.lower() for text in (name, spec.service_type, spec.base_url)
            ):
                continue
            table.add_row(  # Text, not str: DataTable would read a str as markup
                Text(name),
                spec.mode,
                Text(spec.service_type),
                spec.auth,
                Text(view.credential, style=CREDENTIAL_STYLE.get(view.credential, "")),
                Text(spec.base_url),
                key=name,
            )
        self.query_one("#count", Static).update(
            f"{table.row_count} of {len(self.views)} provider(s)"
        )
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_detail()

    def _cursor_name(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key if key in self.views else None

    def _show_detail(self) -> None:
        name = self._cursor_name()
        detail = self.query_one("#detail", Static)
        detail.update(describe_catalog(self.views[name]) if name else "No provider selected.")
        self._load_gateway(name)

    def _load_gateway(self, name: str | None) -> None:
        """The address (a network probe, outside the store lock) and the recent calls (a
        ledger read) load apart; the pane shows both once both are in, if still selected."""
        pane = self.query_one("#gateway", Static)
        if name is None:
            pane.update("")
            return
        caracal = self.context.caracal
        parts: dict[str, Any] = {}

        def arrived(part: str) -> Any:
            def keep(value: Any) -> None:
                parts[part] = value
                if len(parts) == 2 and name == self._cursor_name():
                    pane.update(describe_gateway(name, parts["address"], parts["calls"]))

            return keep

        run_in_background(
            self,
            lambda: caracal.gateway_calls.address(name),
            done=arrived("address"),
            group="gateway-address",
            exclusive=True,
            description=f"gateway address of {name}",
            locked=False,  # a runtime that does not answer must not hold up store calls
        )
        run_in_background(
            self,
            lambda: caracal.gateway_calls.recent(name),
            done=arrived("calls"),
            group="gateway-calls",
            exclusive=True,
            description=f"gateway calls of {name}",
        )

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_edit()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._fill_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.table.focus()

    # ---- actions ---------------------------------------------------------------------------
    def _selected(self) -> ProviderView | None:
        name = self._cursor_name()
        if name is None:
            self.app.notify("Select a provider first.", severity="warning")
            return None
        return self.views[name]

    def _saved(self, verb: str) -> Any:
        def finish(view: ProviderView | None) -> None:
            if view is None:
                return
            message = f"{verb} provider {view.spec.name} ({view.spec.mode})"
            self.remember(message)
            self.app.notify(message)
            self.focus_name = view.spec.name
            self.load()

        return finish

    def action_add(self) -> None:
        from caracal.flow.modals.provider_form import AddProviderModal

        self.app.push_screen(AddProviderModal(), self._saved("Added"))

    def action_edit(self) -> None:
        view = self._selected()
        if view is None:
            return
        from caracal.flow.modals.provider_form import EditProviderModal

        self.app.push_screen(EditProviderModal(view), self._saved("Updated"))

    def action_catalog(self) -> None:
        view = self._selected()
        if view is None:
            return
        from caracal.flow.modals.provider_catalog import ProviderCatalogModal

        self.app.push_screen(ProviderCatalogModal(view), self._saved("Changed the catalog of"))

    def action_test(self) -> None:
        view = self._selected()
        if view is None:
            return
        name = view.spec.name
        line = self.query_one("#probe-result", Static)
        line.update(Text(f"{name}: testing {view.spec.base_url}{view.spec.health_path} …"))
        caracal = self.context.caracal

        def shown(result: ProbeResult) -> None:
            line.update(describe_probe(name, result))
            self.remember(f"tested provider {name}: {'healthy' if result.healthy else 'unhealthy'}")

        def refused(message: str) -> None:
            line.update(
                Text.assemble(f"{name}: ", Text("not tested", style="bold red"), f" — {message}")
            )

        run_in_background(
            self,
            lambda: caracal.providers.test(name),
            done=shown,
            failed=refused,
            group="probe",
            exclusive=True,
            description=f"test provider {name}",
            locked=False,  # a slow provider must not hold up every other store call
        )

    def action_remove(self) -> None:
        view = self._selected()
        if view is None:
            return
        from caracal.flow.modals.confirm import ConfirmModal

        name = view.spec.name
        caracal = self.context.caracal

        def removed(_: None) -> None:
            self.remember(f"removed provider {name}")
            self.app.notify(f"Removed provider {name}.")
            self.load()

        def answered(yes: bool | None) -> None:
            if yes:
                run_in_background(self, lambda: caracal.providers.remove(name), done=removed)

        self.app.push_screen(
            ConfirmModal(
                f"Remove provider {name}?",
                "Its definition is deleted and its stored credential destroyed; new mandates "
                "can no longer name its scopes. This cannot be undone.",
                confirm_label="Remove",
            ),
            answered,
        )


SCREEN = ProvidersScreen
