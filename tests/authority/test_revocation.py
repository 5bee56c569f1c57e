"""Cascade revocation (mandates themselves, not edges), key rotation, principal revocation."""

from __future__ import annotations

from caracal.cli.exit_codes import ExitCode
from tests.authority.conftest import World, ok
from tests.support.cli import run_cli


def _status(mandate: str) -> str:
    return ok(run_cli("mandate", "show", mandate, "--json")).json()["status"]


def test_cascade_three_levels_deep(world: World) -> None:
    root = ok(world.issue("alice", "orch", depth=3)).json()["id"]
    d1 = ok(world.delegate(root, "orch2")).json()["id"]
    d2 = ok(world.delegate(d1, "w1")).json()["id"]
    d3 = ok(world.delegate(d2, "w2")).json()["id"]
    sibling = ok(world.delegate(root, "w2")).json()["id"]
    for mandate in (root, d1, d2, d3, sibling):
        assert world.validate(mandate).code == 0

    graph = ok(run_cli("mandate", "graph", d1)).stdout
    assert root in graph.splitlines()[0] and d3 in graph and sibling not in graph

    refused = run_cli("mandate", "revoke", d1)
    assert refused.code == ExitCode.REFUSED and "2 descendant" in refused.stderr
    assert _status(d1) == "active"

    result = ok(
        run_cli("mandate", "revoke", d1, "--reason", "compromised worker", "--yes", "--json")
    ).json()
    assert result["revoked"] == [d1, d2, d3] and result["already_revoked"] == []
    for mandate in (d1, d2, d3):
        assert _status(mandate) == "revoked"
        assert world.validate(mandate).json()["reason_code"] == "MANDATE_REVOKED"
    # Above and beside the revoked branch nothing changed.
    assert world.validate(root).code == 0 and world.validate(sibling).code == 0

    events = ok(run_cli("ledger", "list", "--type", "mandate.revoked", "--json")).json()
    assert [e["mandate_id"] for e in events] == [d1, d2, d3]
    assert [e["payload"]["cascade_from"] for e in events] == [None, d1, d1]
    assert all(e["payload"]["reason"] == "compromised worker" for e in events)

    again = ok(run_cli("mandate", "revoke", root, "--yes"))
    assert "Revoked 2 mandate(s)" in again.stdout and "3 were already revoked" in again.stderr
    assert world.validate(sibling).json()["reason_code"] == "MANDATE_REVOKED"
    assert ok(run_cli("ledger", "verify")).code == 0


def test_rotation_keeps_old_mandates_valid_and_signs_new_ones_with_the_new_key(
    world: World,
) -> None:
    old = ok(world.issue("alice", "orch")).json()["id"]
    old_kid = ok(run_cli("mandate", "show", old, "--json")).json()["kid"]
    rotated = ok(run_cli("principal", "rotate-key", "alice", "--json")).json()
    assert rotated["old_kids"] == [old_kid] and rotated["new_kid"] != old_kid
    new = ok(world.issue("alice", "orch")).json()["id"]
    assert ok(run_cli("mandate", "show", new, "--json")).json()["kid"] == rotated["new_kid"]
    assert world.validate(old).code == 0 and world.validate(new).code == 0
    keys = {
        k["kid"]: k["status"]
        for k in ok(run_cli("principal", "show", "alice", "--json")).json()["keys"]
    }
    assert keys == {old_kid: "retired", rotated["new_kid"]: "active"}
    # Revoking the old keys now denies exactly what they signed.
    ok(run_cli("principal", "rotate-key", "alice", "--revoke-old", "--yes"))
    assert world.validate(old).json()["reason_code"] == "KEY_REVOKED"
    assert world.validate(new).json()["reason_code"] == "KEY_REVOKED"
    fresh = ok(world.issue("alice", "orch")).json()["id"]
    assert world.validate(fresh).code == 0


def test_rotated_old_key_stops_at_expiry_or_revocation(world: World) -> None:
    old = ok(world.issue("alice", "orch", depth=1)).json()["id"]
    child = ok(world.delegate(old, "w1")).json()["id"]
    ok(run_cli("principal", "rotate-key", "alice"))
    ok(run_cli("principal", "rotate-key", "orch"))
    assert world.validate(child).code == 0
    ok(run_cli("mandate", "revoke", old, "--yes"))
    assert world.validate(child).json()["reason_code"] == "MANDATE_REVOKED"


def test_revoking_a_principal_denies_what_it_issued_and_holds(world: World) -> None:
    issued_by_orch_root = ok(world.issue("alice", "orch", depth=1)).json()["id"]
    issued_by_orch = ok(world.delegate(issued_by_orch_root, "w1")).json()["id"]
    held_by_w2 = ok(world.issue("alice", "w2")).json()["id"]
    refused = run_cli("principal", "revoke", "orch")
    assert refused.code == ExitCode.REFUSED
    ok(run_cli("principal", "revoke", "orch", "--yes"))
    assert world.validate(issued_by_orch_root).json()["reason_code"] == "SUBJECT_INACTIVE"
    assert world.validate(issued_by_orch).json()["reason_code"] == "ISSUER_INACTIVE"
    assert world.validate(held_by_w2).code == 0
    assert run_cli("principal", "activate", "orch").code == ExitCode.CONFLICT
    assert run_cli("principal", "rotate-key", "orch").code == ExitCode.CONFLICT
    assert world.issue("alice", "orch").code == ExitCode.DENIED


def test_active_means_what_validation_says(world: World) -> None:
    """`mandate list --active` and `principal show` counted mandates whose signing key was
    revoked; "active" now comes from the checks validation makes, on every link."""
    root = ok(world.issue("alice", "orch", depth=1)).json()["id"]
    child = ok(world.delegate(root, "w1")).json()["id"]
    other = ok(world.issue("alice", "orch2")).json()["id"]
    pending = ok(world.issue("alice", "orch2", extra=("--starts-in", "10m"))).json()["id"]

    def active() -> set[str]:
        return {r["id"] for r in ok(run_cli("mandate", "list", "--active", "--json")).json()}

    assert active() == {root, child, other}
    ok(run_cli("principal", "rotate-key", "alice", "--revoke-old", "--yes"))
    for mandate, reason in ((root, "KEY_REVOKED"), (child, "DELEGATION_CHAIN_INVALID")):
        assert world.validate(mandate).json()["reason_code"] == reason
        shown = ok(run_cli("mandate", "show", mandate, "--json")).json()
        assert (shown["status"], shown["status_reason"]) == ("blocked", reason)
    assert world.validate(other).json()["reason_code"] == "KEY_REVOKED"
    assert active() == set()
    blocked = ok(run_cli("mandate", "list", "--status", "blocked", "--json")).json()
    assert {r["id"] for r in blocked} == {root, child, other, pending}
    counts = ok(run_cli("principal", "show", "orch", "--json")).json()["mandates"]
    assert counts["held_active"] == 0 and counts["held_total"] == 1
    # A suspended subject blocks what it holds, and only that.
    fresh = ok(world.issue("alice", "orch2")).json()["id"]
    ok(run_cli("principal", "suspend", "orch2", "--yes"))
    assert world.validate(fresh).json()["reason_code"] == "SUBJECT_INACTIVE"
    assert fresh not in active()
    ok(run_cli("principal", "activate", "orch2"))
    assert active() == {fresh}
