"""Revoke a mandate, after seeing every descendant the revocation will reach."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static

from caracal.flow.modals.form import FormModal


class RevokeMandateModal(FormModal[Any]):
    TITLE = "Revoke a mandate and its descendants"
    SUBMIT = "Revoke"

    def __init__(self, preview: list[dict[str, Any]], names: dict[str, str]) -> None:
        super().__init__()
        self.preview = preview
        self.names = names

    def compose_fields(self) -> ComposeResult:
        pending = [r for r in self.preview if r["revoked_at"] is None]
        lines = [
            f"{'    ' * r['level']}{r['id']}  → {self.names.get(r['subject_id'], r['subject_id'])}"
            + ("  (already revoked)" if r["revoked_at"] is not None else "")
            for r in self.preview
        ]
        yield Static(
            f"{len(pending)} mandate(s) will be revoked: this one and {max(len(pending) - 1, 0)} "
            "delegated from it. This cannot be undone.",
            id="revoke-summary",
        )
        yield Static("\n".join(lines), id="revoke-preview", markup=False)
        yield self.field("Reason (recorded in the ledger)")
        yield Input("", id="reason")

    def prepare(self) -> Callable[[], Any]:
        reason = self.value("reason") or None
        caracal, mandate_id = self.flow.context.caracal, self.preview[0]["id"]
        return lambda: caracal.mandates.revoke(mandate_id, reason)
