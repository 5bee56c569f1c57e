"""Deactivating the policy of a principal that still holds live mandates: they stay valid
unless revoked too, so the operator chooses (the facade computes what is affected)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

KEEP, REVOKE = "keep", "revoke"


class DeactivatePolicyModal(ModalScreen[str | None]):
    """Answers KEEP, REVOKE, or None (cancelled)."""

    BINDINGS = [
        Binding("escape", "answer(None)", "Cancel", id="deactivate-cancel"),
        Binding("d", "answer('keep')", "Deactivate, keep mandates", id="deactivate-keep"),
        Binding("x", "answer('revoke')", "Deactivate, revoke mandates", id="deactivate-revoke"),
    ]
    DEFAULT_CSS = """
    DeactivatePolicyModal { align: center middle; }
    DeactivatePolicyModal > Vertical { width: 80; max-width: 100%; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
    DeactivatePolicyModal #details { margin: 1 0; color: $text-muted; }
    DeactivatePolicyModal Horizontal { height: auto; align-horizontal: right; }
    DeactivatePolicyModal Button { margin-left: 1; }
    DeactivatePolicyModal.-short > Vertical { padding: 0 1; }
    """

    def __init__(self, impact: Any) -> None:
        super().__init__()
        self.impact = impact

    def compose(self) -> ComposeResult:
        who = self.impact.principal.name
        held = len(self.impact.live_mandates)
        with Vertical():
            yield Label(f"Deactivate policy {self.impact.policy.id} of {who}?", id="question")
            yield Static(
                f"It is {who}'s only active policy: nothing more can be issued or delegated to "
                f"{who} until it has a new one. {who} holds {held} mandate(s) that stay valid "
                "until they expire or are revoked. Revoking them also revokes everything "
                "delegated from them.",
                id="details",
                markup=False,
            )
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Deactivate, keep mandates", id="keep", variant="warning")
                yield Button(f"Deactivate, revoke {held}", id="revoke", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)
