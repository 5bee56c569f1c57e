"""Rotate a principal's signing key, optionally revoking the old keys (asked again first:
revoking them stops every token they signed from validating)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Checkbox, Static

from caracal.flow.modals.form import FormModal


class RotateKeyModal(FormModal[Any]):
    TITLE = "Rotate the signing key"
    SUBMIT = "Rotate"

    def __init__(self, principal: dict[str, Any]) -> None:
        super().__init__()
        self.principal = principal

    def compose_fields(self) -> ComposeResult:
        yield Static(
            f"{self.principal['name']} ({self.principal['kind']}) gets a new signing key. "
            "By default the current key is retired: it signs nothing new but still verifies "
            "what it already signed.",
            classes="hint",
            markup=False,
        )
        yield Checkbox(
            "Revoke the old keys instead: mandates they signed stop validating",
            id="revoke-old",
        )

    @property
    def revoke_old(self) -> bool:
        return self.query_one("#revoke-old", Checkbox).value

    def action_submit(self) -> None:
        if not self.revoke_old:
            super().action_submit()
            return
        from caracal.flow.modals.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if yes:
                super(RotateKeyModal, self).action_submit()

        self.app.push_screen(
            ConfirmModal(
                f"Rotate and revoke every old key of {self.principal['name']}?",
                "Mandates signed with the old keys stop validating at once. This cannot be undone.",
                confirm_label="Rotate and revoke",
            ),
            answered,
        )

    def prepare(self) -> Callable[[], Any]:
        revoke_old, principal_id = self.revoke_old, self.principal["id"]
        caracal = self.flow.context.caracal
        return lambda: caracal.principals.rotate_key(principal_id, revoke_old=revoke_old)
