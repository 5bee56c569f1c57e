"""Register a principal: its kind, a unique name and an optional email. A signing key is
created with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Select, Static

from caracal.flow.modals.form import FormModal

KIND_HELP = {
    "human": "a person; may grant authority to every kind",
    "orchestrator": "an agent that plans; may grant to orchestrators, workers and services",
    "worker": "an agent that acts; may grant to workers and services",
    "service": "a system that only receives authority",
}


class RegisterPrincipalModal(FormModal[Any]):
    TITLE = "Register a principal"
    SUBMIT = "Register"

    def compose_fields(self) -> ComposeResult:
        from caracal.core.principals import KINDS

        yield self.field("Kind")
        yield Select([(kind, kind) for kind in KINDS], value="human", allow_blank=False, id="kind")
        yield Static(KIND_HELP["human"], id="kind-help", classes="hint")
        yield self.field("Name (letters, digits, '.', '@', '-' or '_')")
        yield Input("", id="name", placeholder="e.g. alice or billing-agent")
        yield self.field("Email (optional)")
        yield Input("", id="email")

    @property
    def kind(self) -> str:
        value = self.query_one("#kind", Select).value
        return value if isinstance(value, str) else "human"

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "kind":
            self.query_one("#kind-help", Static).update(KIND_HELP.get(self.kind, ""))

    def on_input_changed(self, event: Input.Changed) -> None:
        super().on_input_changed(event)
        if event.input.id == "name":
            try:
                self._checked_name()
            except ValueError as exc:
                self.show_error(str(exc))
            else:
                self.show_error("")

    def _checked_name(self) -> str:
        from caracal.core.errors import ValidationError
        from caracal.core.names import check_principal_name

        try:
            return check_principal_name(self.value("name"))
        except ValidationError as exc:
            raise ValueError(exc.message) from None

    def prepare(self) -> Callable[[], Any]:
        name, kind = self._checked_name(), self.kind
        email = self.value("email") or None
        caracal = self.flow.context.caracal
        return lambda: caracal.principals.register(kind, name, email)
