"""Delegate a subset of a mandate to another principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Select, SelectionList, Static

from caracal.flow.modals.form import FormModal


class DelegateMandateModal(FormModal[Any]):
    TITLE = "Delegate a mandate"
    SUBMIT = "Delegate"

    def __init__(self, mandate: dict[str, Any], principals: list[dict[str, Any]]) -> None:
        super().__init__()
        self.mandate = mandate
        self.principals = principals

    def compose_fields(self) -> ComposeResult:
        m = self.mandate
        yield Static(
            f"From {m['id']} (delegation depth left: {m['depth']}). The new mandate takes a subset "
            "of its scopes and expires no later than it does.",
            classes="hint",
        )
        options = [
            (f"{p['name']} ({p['kind']})", p["id"])
            for p in self.principals
            if p["status"] == "active" and p["id"] != m["subject_id"]
        ]
        yield self.field("Subject (who receives)")
        yield Select(options, id="subject", prompt="choose the subject")
        yield self.field("Resources")
        yield SelectionList[str](*[(s, s, True) for s in m["resources"]], id="resources")
        yield self.field("Actions")
        yield SelectionList[str](*[(s, s, True) for s in m["actions"]], id="actions")
        yield self.field("Valid for (capped at the source's expiry)")
        yield Input("10m", id="ttl")
        yield self.field("Delegation depth (empty: the source's minus one)")
        yield Input("", id="depth", type="integer")

    def prepare(self) -> Callable[[], Any]:
        subject = self.query_one("#subject", Select).value
        if not isinstance(subject, str):
            raise ValueError("Choose who receives the delegated mandate.")
        resources = list(self.query_one("#resources", SelectionList).selected)
        actions = list(self.query_one("#actions", SelectionList).selected)
        if not resources or not actions:
            raise ValueError("Keep at least one resource and one action.")
        depth_text = self.value("depth")
        depth = int(depth_text) if depth_text else None
        ttl = self.value("ttl")
        caracal, source = self.flow.context.caracal, self.mandate["id"]
        return lambda: caracal.mandates.delegate(
            source, subject, resources, actions, ttl, delegation_depth=depth
        )
