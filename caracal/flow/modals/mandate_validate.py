"""Validate a mandate for one action on one resource (a dry run: the decision is recorded in
the ledger like any other, marked as coming from Flow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Select, Static

from caracal.core.scopes import scope_kind
from caracal.flow.modals.form import FormModal


class ValidateMandateModal(FormModal[Any]):
    TITLE = "Validate a mandate"
    SUBMIT = "Validate"

    def __init__(
        self, mandate: dict[str, Any], scopes: list[str], names: dict[str, str] | None = None
    ) -> None:
        super().__init__()
        self.mandate = mandate
        self.scopes = scopes
        self.names = names or {}

    @property
    def dirty(self) -> bool:
        """A dry run: closing it loses nothing, so esc never asks."""
        return False

    def compose_fields(self) -> ComposeResult:
        yield Static(f"Mandate {self.mandate['id']}", classes="hint")
        actions = sorted(
            {
                *self.mandate["actions"],
                *(s for s in self.scopes if scope_kind(s) == "action" and "*" not in s),
            }
        )
        resources = sorted(
            {
                *self.mandate["resources"],
                *(s for s in self.scopes if scope_kind(s) == "resource" and "*" not in s),
            }
        )
        yield self.field("Action")
        yield Select([(a, a) for a in actions], id="action", value=self.mandate["actions"][0])
        yield self.field("Resource")
        yield Select([(r, r) for r in resources], id="resource", value=self.mandate["resources"][0])
        yield self.field("Caller (optional principal name or id)")
        yield Input("", id="caller")
        yield self.field("Intent (optional JSON)")
        yield Input("", id="intent")

    def compose_outcome(self) -> ComposeResult:
        decision = Static("", id="decision")
        decision.display = False
        yield decision

    def prepare(self) -> Callable[[], Any]:
        from caracal.core.canonical import parse_intent
        from caracal.core.errors import ValidationError

        action = self.query_one("#action", Select).value
        resource = self.query_one("#resource", Select).value
        if not isinstance(action, str) or not isinstance(resource, str):
            raise ValueError("Choose an action and a resource.")
        try:
            intent = parse_intent(self.value("intent") or None)
        except ValidationError as exc:
            raise ValueError(exc.message) from None
        caller = self.value("caller") or None
        caracal, mandate_id = self.flow.context.caracal, self.mandate["id"]
        return lambda: caracal.validation.validate(
            action, resource, mandate_id=mandate_id, caller=caller, intent=intent
        )

    def show_error(self, message: str) -> None:
        super().show_error(message)
        if message:  # a decision shown above a newer error would read as its answer
            self.show_decision("")

    def show_decision(self, text: str) -> None:
        """The decision takes the error line's place: one line under the fields holds
        whichever of the two is the latest answer."""
        decision = self.query_one("#decision", Static)
        decision.update(text)
        decision.display = bool(text)
        self.query_one("#form-error", Static).display = not text

    def on_input_changed(self, event: Input.Changed) -> None:
        super().on_input_changed(event)
        self.show_decision("")  # the last decision was for other inputs

    def on_select_changed(self, _: Select.Changed) -> None:
        if self.is_mounted:
            self.show_decision("")

    def action_submit(self) -> None:
        """Stay open and show the decision, so several checks can be tried in a row."""
        try:
            work = self.prepare()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.show_error("")
        self.show_decision("Validating…")

        def shown(decision: Any) -> None:
            self.show_decision(verdict_text(decision, self.names))
            self.flow.data_changed("ledger")

        from caracal.flow.tasks import run_in_background

        run_in_background(self, work, done=shown, failed=self.show_error)


def verdict_text(decision: Any, names: dict[str, str] | None = None) -> str:
    """ALLOWED, or DENIED with its code, and the reason only when it says more than that
    (principals named, not numbered)."""
    from textual.markup import escape

    from caracal.flow.text import names_for_ids

    if decision.allowed:
        verdict = "[green b]ALLOWED[/]"
    else:
        verdict = f"[red b]DENIED[/] {escape(decision.reason_code)}"
    reason = names_for_ids((decision.reason or "").strip(), names or {})
    reason = reason.replace("caller unknown:", "caller ")  # a name no principal has
    if not reason or reason.lower() in ("allowed", "denied", decision.reason_code.lower()):
        return verdict
    return f"{verdict} — {escape(reason)}"
