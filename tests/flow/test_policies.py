"""Policies through the keyboard: create with the catalog pickers, replace, deactivate."""

from __future__ import annotations

from typing import Any

from textual.widgets import SelectionList

from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, screen_name, settle, until


async def open_policies(pilot: Any, total: int) -> None:
    app = pilot.app
    await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
    await pilot.press("5")
    await until(
        pilot,
        lambda: (
            screen_name(app) == "PoliciesScreen"
            and app.screen.query_one("#policies").total == total
        ),
        what=f"{total} policies listed",
    )


async def pick_principal(pilot: Any, name: str, principal_id: str) -> None:
    """The principal Select has focus: open it, type to find the name, take it."""
    await pilot.press("enter", *name, "enter")
    await until(
        pilot, lambda: pilot.app.screen.query_one("#principal").value == principal_id, what=name
    )


def option_index(pilot: Any, list_id: str, value: str) -> int:
    picker = pilot.app.screen.query_one(f"#{list_id}", SelectionList)
    return next(
        i for i in range(picker.option_count) if picker.get_option_at_index(i).value == value
    )


async def pick(pilot: Any, list_id: str, *values: str) -> None:
    """The SelectionList has focus: move to each value and toggle it with space."""
    picker = pilot.app.screen.query_one(f"#{list_id}", SelectionList)
    for value in values:
        target = option_index(pilot, list_id, value)
        await pilot.press("home")
        await pilot.press(*["down"] * target, "space")
        await until(pilot, lambda v=value: v in picker.selected, what=f"{value} picked")


async def test_create_a_policy_with_the_pickers(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_policies(pilot, 3)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "CreatePolicyModal", what="policy form")
        await pick_principal(pilot, "alice", world["alice"])
        await pilot.press("tab")
        await pick(pilot, "resources", "provider:github:resource:repos")
        await pilot.press("tab")
        # "all actions of github", plus a single action the wildcard makes redundant.
        await pick(pilot, "actions", "provider:github:action:*", "provider:github:action:read")
        await pilot.press("tab", "ctrl+a", "ctrl+k", *"2h", "tab", "ctrl+a", "ctrl+k", "1")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen_name(app) == "PoliciesScreen", what="back to the list")
        await until(
            pilot, lambda: app.screen.query_one("#policies").total == 4, what="four policies"
        )
        assert app.screen.query_one("#policies").current_row["principal_id"] == world["alice"]
    with Caracal.open("demo") as caracal:
        policies = caracal.policies.all("alice")
    assert len(policies) == 1
    policy = policies[0]
    assert policy["status"] == "active"
    assert policy["resources"] == ["provider:github:resource:repos"]
    assert policy["actions"] == ["provider:github:action:*"]
    assert (policy["max_validity"], policy["delegation_depth"]) == (7200, 1)


async def test_replacing_an_active_policy_needs_the_checkbox(
    world: dict[str, str], app_factory: Any
) -> None:
    with Caracal.open("demo") as caracal:
        old = caracal.policies.all("w1")[0]["id"]
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_policies(pilot, 3)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(app) == "CreatePolicyModal")
        await pick_principal(pilot, "w1", world["w1"])
        assert old in str(app.screen.query_one("#current-policy").render())
        await pilot.press("tab")
        await pick(pilot, "resources", "provider:github:resource:issues")
        await pilot.press("tab")
        await pick(pilot, "actions", "provider:github:action:comment")
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: (
                "already has active policy" in str(app.screen.query_one("#form-error").render())
            ),
        )
        await pilot.press("tab", "tab", "tab", "space")  # validity, depth, then the checkbox
        await until(pilot, lambda: app.screen.query_one("#replace").value, what="replace ticked")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen_name(app) == "PoliciesScreen")
        await until(pilot, lambda: app.screen.query_one("#policies").total == 4)
    with Caracal.open("demo") as caracal:
        statuses = {p["id"]: p["status"] for p in caracal.policies.all("w1")}
        new = next(p for p in caracal.policies.all("w1") if p["id"] != old)
    assert statuses[old] == "inactive" and new["status"] == "active"
    assert new["actions"] == ["provider:github:action:comment"]


async def test_deactivate_the_selected_policy(world: dict[str, str], app_factory: Any) -> None:
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_policies(pilot, 3)
        newest = app.screen.query_one("#policies").current_row
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal", what="confirmation")
        await pilot.press("n")  # no: nothing changes
        await until(pilot, lambda: screen_name(app) == "PoliciesScreen")
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "ConfirmModal")
        assert newest["id"] in str(app.screen.query_one("#question").render())
        await pilot.press("y")
        await until(pilot, lambda: screen_name(app) == "PoliciesScreen")
        await until(
            pilot,
            lambda: app.screen.query_one("#policies").current_row["status"] == "inactive",
            what="shown inactive",
        )
        await settle(pilot)
    with Caracal.open("demo") as caracal:
        policy = caracal.policies.get(newest["id"])
        others = [p["status"] for p in caracal.policies.all() if p["id"] != newest["id"]]
    assert policy["status"] == "inactive" and others == ["active", "active"]


async def test_deactivating_the_policy_of_a_holder_warns_and_can_revoke(
    world: dict[str, str], app_factory: Any
) -> None:
    """orch holds a live mandate: deactivating its only policy says so and offers to revoke
    it (the facade computes what is affected)."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_policies(pilot, 3)
        await pilot.press("end")  # the oldest policy: orch's
        await until(
            pilot,
            lambda: app.screen.query_one("#policies").current_row["principal_id"] == world["orch"],
            what="orch's policy selected",
        )
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "DeactivatePolicyModal", what="warning")
        details = str(app.screen.query_one("#details").render())
        assert "orch holds 1 mandate(s) that stay valid" in details
        await pilot.press("escape")  # cancel: nothing changes
        await until(pilot, lambda: screen_name(app) == "PoliciesScreen")
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "DeactivatePolicyModal")
        await pilot.press("x")
        await until(pilot, lambda: screen_name(app) == "PoliciesScreen")
        await until(
            pilot,
            lambda: app.screen.query_one("#policies").current_row["status"] == "inactive",
            what="shown inactive",
        )
        await settle(pilot)
    with Caracal.open("demo") as caracal:
        assert caracal.mandates.get(world["root"])["status"] == "revoked"
        orch = [p["status"] for p in caracal.policies.all("orch")]
    assert orch == ["inactive"]
