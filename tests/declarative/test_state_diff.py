"""The plan's rules on their own: two states in, a plan out (no store)."""

from __future__ import annotations

from typing import Any

from caracal.core.state_diff import plan
from caracal.core.workspace_state import WorkspaceState

BASE: dict[str, Any] = {
    "providers": [
        {
            "name": "gh",
            "base_url": "https://api.github.com",
            "auth": "bearer",
            "credential_env": "GH_TOKEN",
            "resources": [{"id": "repos"}, {"id": "issues"}],
            "actions": [{"resource": "repos", "id": "read"}, {"resource": "issues", "id": "read"}],
        }
    ],
    "principals": [{"name": "a", "kind": "human"}, {"name": "w", "kind": "worker"}],
    "policies": [
        {
            "principal": "w",
            "max_validity": "1h",
            "resources": ["provider:gh:resource:*"],
            "actions": ["provider:gh:action:read"],
        }
    ],
    "settings": {"validation.clock_leeway_seconds": 30},
}


def state(**changes: object) -> WorkspaceState:
    return WorkspaceState.model_validate({**BASE, **changes})


def test_order_and_equal_durations_do_not_make_changes() -> None:
    reordered = state(
        principals=list(reversed(BASE["principals"])),
        policies=[{**BASE["policies"][0], "max_validity": 3600}],
    )
    assert plan(state(), reordered, allow_suspend=False).empty


def test_a_credential_reference_is_not_state() -> None:
    provider = {**BASE["providers"][0], "credential_env": "OTHER"}
    assert plan(state(), state(providers=[provider]), allow_suspend=False).empty


def test_settings_left_out_are_left_alone_and_a_longer_leeway_widens() -> None:
    assert plan(state(), state(settings={}), allow_suspend=False).empty
    longer = plan(
        state(), state(settings={"validation.clock_leeway_seconds": 90}), allow_suspend=False
    )
    assert [c.widens for c in longer.changes] == [("accepts tokens further past their expiry",)]
    shorter = plan(
        state(), state(settings={"validation.clock_leeway_seconds": 5}), allow_suspend=False
    )
    assert [c.widens for c in shorter.changes] == [()]


def test_only_patterns_no_old_one_covers_widen() -> None:
    def widens(resources: list[str], actions: list[str]) -> tuple[str, ...]:
        policy = {**BASE["policies"][0], "resources": resources, "actions": actions}
        (change,) = plan(state(), state(policies=[policy]), allow_suspend=False).changes
        return change.widens

    assert widens(["provider:gh:resource:repos"], ["provider:gh:action:read"]) == ()
    assert widens(["provider:gh:resource:*"], ["provider:gh:action:*"]) == (
        "adds action provider:gh:action:*",
    )
    assert widens(["provider:*:resource:*"], ["provider:gh:action:read"]) == (
        "adds resource provider:*:resource:*",
    )


def test_removals_come_last_and_in_dependency_order() -> None:
    desired = state(providers=[], principals=[{"name": "w", "kind": "worker"}], policies=[])
    changes = plan(state(), desired, allow_suspend=True).changes
    assert [(c.op, c.kind, c.name) for c in changes] == [
        ("-", "policy", "w"),
        ("-", "principal", "a"),
        ("-", "provider", "gh"),
    ]
    assert [c.needs for c in plan(state(), desired, allow_suspend=False).changes] == [
        None,
        "--allow-suspend",
        None,
    ]
