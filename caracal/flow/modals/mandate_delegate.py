"""Delegate a subset of a mandate to another principal.

What the form offers comes from the facade (`mandates.delegation_options`): only the subjects
the rules allow, the others listed with the reason, and the depth each may receive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Select, SelectionList, Static

from caracal.flow.modals.form import FormModal
from caracal.services.delegation_options import DelegationOptions, SubjectOption


class DelegateMandateModal(FormModal[Any]):
    TITLE = "Delegate a mandate"
    SUBMIT = "Delegate"

    def __init__(self, mandate: dict[str, Any], options: DelegationOptions) -> None:
        super().__init__()
        self.mandate = mandate
        self.options = options
        self.allowed = {o.id: o for o in options.allowed}

    def compose_fields(self) -> ComposeResult:
        m = self.mandate
        yield Static(
            f"From {m['id']} (delegation depth left: {m['depth']}). The new mandate takes a subset "
            "of its scopes and expires no later than it does.",
            classes="hint",
        )
        yield self.field("Subject (who receives)")
        yield Select(
            [(f"{o.name} ({o.kind})", o.id) for o in self.options.allowed],
            id="subject",
            prompt="choose the subject" if self.allowed else "no principal may receive it",
        )
        yield Static(refused_text(self.options.refused), id="refused", classes="hint", markup=False)
        yield self.field("Resources")
        yield SelectionList[str](*[(s, s, True) for s in m["resources"]], id="resources")
        yield self.field("Actions")
        yield SelectionList[str](*[(s, s, True) for s in m["actions"]], id="actions")
        yield self.field("Valid for (capped at the source's expiry)")
        yield Input("10m", id="ttl")
        yield self.field("Delegation depth")
        yield Static("Choose the subject first.", id="depth-note", classes="hint", markup=False)
        yield Input("", id="depth", type="integer")

    def _chosen(self) -> SubjectOption | None:
        value = self.query_one("#subject", Select).value
        return self.allowed.get(value) if isinstance(value, str) else None

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "subject":
            return
        chosen = self._chosen()
        note = self.query_one("#depth-note", Static)
        if chosen is None:
            note.update("Choose the subject first.")
            return
        self.query_one("#depth", Input).value = str(chosen.max_depth)
        note.update(depth_note(chosen, self.options.source_depth))

    def prepare(self) -> Callable[[], Any]:
        chosen = self._chosen()
        if chosen is None:
            raise ValueError("Choose who receives the delegated mandate.")
        resources = list(self.query_one("#resources", SelectionList).selected)
        actions = list(self.query_one("#actions", SelectionList).selected)
        if not resources or not actions:
            raise ValueError("Keep at least one resource and one action.")
        depth_text = self.value("depth")
        depth = int(depth_text) if depth_text else chosen.max_depth
        if not 0 <= depth <= chosen.max_depth:
            raise ValueError(f"{depth_note(chosen, self.options.source_depth)} Change the depth.")
        ttl = self.value("ttl")
        caracal, source = self.flow.context.caracal, self.mandate["id"]
        return lambda: caracal.mandates.delegate(
            source, chosen.id, resources, actions, ttl, delegation_depth=depth
        )


def refused_text(refused: list[SubjectOption]) -> str:
    if not refused:
        return ""
    return "Not offered:\n" + "\n".join(f"  {o.name} ({o.kind}): {o.reason}" for o in refused)


def depth_note(chosen: SubjectOption, source_depth: int) -> str:
    if chosen.max_depth > 0:
        return f"0 to {chosen.max_depth} for {chosen.name}."
    why = (
        "this mandate has 1 level of delegation left"
        if source_depth <= 1
        else f"{chosen.name}'s policy allows no further delegation"
    )
    return f"0 is the only choice for {chosen.name}: {why}."
