"""Create a policy: scopes are picked from the workspace's catalog, never typed.

Each provider also offers a wildcard line ("all actions of github" ->
`provider:github:action:*`); picking it makes the provider's single lines redundant, so
they are dropped from what is saved. The scope grammar and what a wildcard covers are the
core's (`caracal.core.scopes`); a wildcard covers only the pairs the catalog declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Select, SelectionList, Static

from caracal.core.scopes import ScopeKind, by_provider, drop_covered, provider_wildcard
from caracal.flow.modals.form import FormModal

PLURAL = {"resource": "resources", "action": "actions"}


def scope_choices(scopes: list[str], kind: ScopeKind) -> list[tuple[str, str]]:
    """(label, pattern) pairs: per provider, its wildcard first, then each catalog scope."""
    choices: list[tuple[str, str]] = []
    for provider, listed in by_provider(scopes, kind).items():
        wildcard = provider_wildcard(provider, kind)
        choices.append((f"all {PLURAL[kind]} of {provider}  ({wildcard})", wildcard))
        choices += [(scope, scope) for scope in listed if scope != wildcard]
    return choices


class CreatePolicyModal(FormModal[Any]):
    TITLE = "Create a policy"
    SUBMIT = "Create"
    AUTO_FOCUS = "#principal"

    def __init__(
        self,
        principals: list[dict[str, Any]],
        scopes: list[str],
        policies: list[dict[str, Any]],
    ) -> None:
        super().__init__()
        self.principals = principals
        self.scopes = scopes
        self.active_policy = {
            p["principal_id"]: p["id"] for p in policies if p["status"] == "active"
        }

    def compose_fields(self) -> ComposeResult:
        options = [
            (f"{p['name']} ({p['kind']})", p["id"])
            for p in self.principals
            if p["status"] != "revoked"
        ]
        yield self.field("Principal (whose upper bound this is)")
        yield Select(options, id="principal", prompt="choose the principal")
        yield Static("", id="current-policy", classes="hint")
        yield self.field("Resources it may be granted (space to pick)")
        yield SelectionList[str](*scope_choices(self.scopes, "resource"), id="resources")
        yield self.field("Actions it may be granted (space to pick)")
        yield SelectionList[str](*scope_choices(self.scopes, "action"), id="actions")
        yield self.field("Longest validity of a mandate it receives (e.g. 90s, 30m, 1h, 7d)")
        yield Input("1h", id="max-validity")
        yield self.field("Delegation depth it may receive (0-16)")
        yield Input("0", id="depth", type="integer")
        yield Checkbox("Replace the active policy (if the principal already has one)", id="replace")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "principal":
            return
        hint = self.query_one("#current-policy", Static)
        current = self.active_policy.get(event.value) if isinstance(event.value, str) else None
        hint.update(
            f"It already has active policy {current}: tick “Replace the active policy” to "
            "supersede it."
            if current
            else ""
        )

    def prepare(self) -> Callable[[], Any]:
        from caracal.core.durations import parse_duration
        from caracal.core.errors import ValidationError

        principal = self.query_one("#principal", Select).value
        if not isinstance(principal, str):
            raise ValueError("Choose the principal the policy is for.")
        resources = drop_covered(list(self.query_one("#resources", SelectionList).selected))
        actions = drop_covered(list(self.query_one("#actions", SelectionList).selected))
        if not resources or not actions:
            raise ValueError("Pick at least one resource and one action.")
        max_validity = self.value("max-validity")
        try:
            parse_duration(max_validity)
        except ValidationError as exc:
            raise ValueError(exc.message) from None
        try:
            depth = int(self.value("depth") or "0")
        except ValueError:
            raise ValueError("Delegation depth must be a whole number.") from None
        replace = self.query_one("#replace", Checkbox).value
        caracal = self.flow.context.caracal
        return lambda: caracal.policies.create(
            principal, max_validity, resources, actions, depth, replace=replace
        )
