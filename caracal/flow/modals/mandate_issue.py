"""Issue a mandate, with the subject's policy bounds shown and its scopes offered as choices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Select, SelectionList, Static

from caracal.flow.modals.form import FormModal


class IssueMandateModal(FormModal[Any]):
    TITLE = "Issue a mandate"
    SUBMIT = "Issue"

    def __init__(self, principals: list[dict[str, Any]]) -> None:
        super().__init__()
        self.principals = principals

    def compose_fields(self) -> ComposeResult:
        options = [
            (f"{p['name']} ({p['kind']})", p["id"])
            for p in self.principals
            if p["status"] == "active"
        ]
        yield self.field("Issuer (who grants)")
        yield Select(options, id="issuer", prompt="choose the issuer")
        yield self.field("Subject (who receives)")
        yield Select(options, id="subject", prompt="choose the subject")
        yield Static("Choose a subject to see what its policy allows.", id="bounds", classes="hint")
        yield self.field("Resources")
        yield SelectionList[str](id="resources")
        yield self.field("Actions")
        yield SelectionList[str](id="actions")
        yield self.field("Valid for (e.g. 15m, 1h, 7d)")
        yield Input("15m", id="ttl")
        yield self.field("Delegation depth")
        yield Input("0", id="depth", type="integer")
        yield self.field("Starts in (optional, e.g. 10m)")
        yield Input("", id="starts-in")
        yield self.field("Intent (optional JSON the mandate is bound to)")
        yield Input("", id="intent")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "subject" or not isinstance(event.value, str):
            return
        from caracal.flow.tasks import run_in_background

        subject = event.value
        caracal = self.flow.context.caracal
        # Not `load`: choosing the subject is an edit, and what it fills in stays one (esc asks).
        run_in_background(
            self,
            lambda: caracal.mandates.issue_bounds(subject),
            done=self._show_bounds,
            failed=self.show_error,
            description="subject's bounds",
        )

    def _show_bounds(self, bounds: dict[str, Any]) -> None:
        from caracal.core.durations import format_duration

        policy = bounds["policy"]
        text = (
            f"Policy {policy.id}: valid at most {format_duration(policy.max_validity)}, "
            f"delegation depth at most {policy.delegation_depth}."
            if policy
            else "This subject has no active policy: issuing to it will be refused."
        )
        self.query_one("#bounds", Static).update(text)
        for list_id in ("resources", "actions"):
            refill(self.query_one(f"#{list_id}", SelectionList), bounds[list_id])

    def prepare(self) -> Callable[[], Any]:
        from caracal.core.canonical import parse_intent
        from caracal.core.errors import ValidationError

        issuer = self.query_one("#issuer", Select).value
        subject = self.query_one("#subject", Select).value
        if not isinstance(issuer, str) or not isinstance(subject, str):
            raise ValueError("Choose an issuer and a subject.")
        resources = list(self.query_one("#resources", SelectionList).selected)
        actions = list(self.query_one("#actions", SelectionList).selected)
        if not resources or not actions:
            raise ValueError("Pick at least one resource and one action.")
        try:
            depth = int(self.value("depth") or "0")
            intent = parse_intent(self.value("intent") or None)
        except (ValueError, ValidationError) as exc:
            raise ValueError(getattr(exc, "message", str(exc))) from None
        ttl, starts_in = self.value("ttl"), self.value("starts-in") or None
        caracal = self.flow.context.caracal
        return lambda: caracal.mandates.issue(
            issuer,
            subject,
            resources,
            actions,
            ttl,
            delegation_depth=depth,
            intent=intent,
            starts_in=starts_in,
        )


def refill(selection: SelectionList[str], scopes: list[str]) -> None:
    """Offer `scopes`, keeping what the operator did meanwhile: the bounds arrive a moment
    after the subject is chosen, and keys pressed in that moment must act on what they
    pointed at (same list: untouched; else the ticks and the highlighted scope carried over)."""
    current = [str(selection.get_option_at_index(i).value) for i in range(selection.option_count)]
    if current == scopes:
        return
    at = selection.highlighted
    pointed = current[at] if at is not None and 0 <= at < len(current) else None
    ticked = set(selection.selected) & set(scopes)
    selection.clear_options()
    selection.add_options([(scope, scope, scope in ticked) for scope in scopes])
    if scopes:  # so space selects at once, without a first arrow key
        selection.highlighted = scopes.index(pointed) if pointed in scopes else 0
