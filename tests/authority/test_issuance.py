"""Issuance and delegation: bounds, refusals (each recorded), the direction matrix."""

from __future__ import annotations

import pytest
import time_machine

from caracal.cli.exit_codes import ExitCode
from caracal.core.principals import KINDS, may_grant
from caracal.core.reasons import ISSUANCE_REFUSALS
from tests.authority.conftest import COMMENT, ISSUES, READ, REPOS, WRITE, World, ok
from tests.support.asserted import codes_asserted
from tests.support.cli import Result, run_cli


def refused(result: Result, code: str) -> None:
    assert result.code == ExitCode.DENIED, result
    result.one_error()
    events = ok(run_cli("ledger", "list", "--type", "mandate.", "--limit", "1", "--json")).json()
    assert events[-1]["type"] in ("mandate.issue_refused", "mandate.delegation_refused"), events
    assert events[-1]["reason_code"] == code, events[-1]


def test_issue_returns_id_and_a_verifiable_token(world: World) -> None:
    from cryptography.hazmat.primitives import serialization

    from caracal.core import jws
    from caracal.core.keys import verify

    data = ok(world.issue("alice", "orch")).json()
    assert data["id"].startswith("mnd_") and data["token"].count(".") == 2
    parsed = jws.decode(data["token"])
    assert parsed.header["alg"] == "ES256" and parsed.header["kid"]
    assert parsed.claims["jti"] == data["id"] and parsed.claims["sub"] == world.ids["orch"]
    # Offline: nothing but the issuer's public key is needed.
    keys = ok(run_cli("principal", "show", "alice", "--json")).json()["keys"]
    pem = next(k["public_pem"] for k in keys if k["kid"] == parsed.kid)
    public = serialization.load_pem_public_key(pem.encode())
    assert verify(public, parsed.signing_input, parsed.signature)  # type: ignore[arg-type]
    assert ok(run_cli("mandate", "token", data["id"])).stdout.strip() == data["token"]
    shown = ok(run_cli("mandate", "show", data["id"], "--json")).json()
    assert shown["status"] == "active" and "token" not in shown


def test_issuance_refusals_name_the_bound_and_are_recorded(world: World) -> None:
    before = len(ok(run_cli("mandate", "list", "--json")).json())
    refused(world.issue("alice", "orch", ttl="2h"), "POLICY_VALIDITY_EXCEEDED")
    refused(world.issue("alice", "orch", depth=4), "POLICY_DEPTH_EXCEEDED")
    ok(
        run_cli(
            "policy",
            "create",
            "--principal",
            "orch2",
            "--max-validity",
            "1h",
            "--replace",
            "--resource",
            REPOS,
            "--action",
            READ,
        )
    )
    refused(
        world.issue("alice", "orch2", resources=(ISSUES,), actions=(COMMENT,)),
        "POLICY_RESOURCE_EXCEEDED",
    )
    refused(world.issue("alice", "orch2", actions=(READ, WRITE)), "POLICY_ACTION_EXCEEDED")
    refused(world.issue("alice", "alice"), "NO_ACTIVE_POLICY")
    refused(world.issue("orch", "alice"), "DIRECTION_NOT_ALLOWED")
    refused(world.issue("svc", "w1"), "DIRECTION_NOT_ALLOWED")
    ok(run_cli("principal", "suspend", "alice", "--yes"))
    refused(world.issue("alice", "orch"), "ISSUER_INACTIVE")
    ok(run_cli("principal", "activate", "alice"))
    ok(run_cli("principal", "suspend", "orch", "--yes"))
    refused(world.issue("alice", "orch"), "SUBJECT_INACTIVE")
    assert len(ok(run_cli("mandate", "list", "--json")).json()) == before
    message = world.issue("alice", "w1", ttl="3h").stderr
    assert "Requested validity 3h exceeds the policy maximum of 1h" in message


def test_bad_input_is_invalid_not_a_refusal(world: World) -> None:
    bad_scope = world.issue("alice", "orch", actions=("provider:github:action:delete",))
    assert (
        bad_scope.code == ExitCode.INVALID and "not in this workspace's catalog" in bad_scope.stderr
    )
    wrong_kind = world.issue("alice", "orch", actions=(REPOS,))
    assert wrong_kind.code == ExitCode.INVALID
    bad_ttl = world.issue("alice", "orch", ttl="soon")
    assert bad_ttl.code == ExitCode.INVALID and "Invalid duration" in bad_ttl.stderr
    unknown = world.issue("alice", "nobody")
    assert unknown.code == ExitCode.NOT_FOUND


def test_delegation_bounds_and_refusals(world: World) -> None:
    root = ok(world.issue("alice", "orch", depth=2, ttl="30m")).json()
    child = ok(
        world.delegate(root["id"], "orch2", ttl="2h", extra=("--delegation-depth", "1"))
    ).json()
    assert child["expires_at"] == root["expires_at"] and child["expiry_capped"] is True
    assert child["parent_id"] == root["id"] and child["delegation_depth"] == 1
    assert child["issuer_id"] == world.ids["orch"]
    refused(
        world.delegate(root["id"], "w1", resources=(ISSUES,), actions=(COMMENT,)),
        "SCOPE_NOT_SUBSET",
    )
    refused(
        world.delegate(root["id"], "w1", resources=(REPOS, ISSUES), actions=(READ, COMMENT)),
        "SCOPE_NOT_SUBSET",
    )
    refused(
        world.delegate(root["id"], "w1", extra=("--delegation-depth", "2")),
        "DELEGATION_DEPTH_EXHAUSTED",
    )
    leaf = ok(world.delegate(child["id"], "w1")).json()
    assert leaf["delegation_depth"] == 0
    refused(world.delegate(leaf["id"], "w2"), "DELEGATION_DEPTH_EXHAUSTED")
    refused(world.delegate(child["id"], "alice"), "DIRECTION_NOT_ALLOWED")
    # The target's own policy also bounds what it may receive.
    ok(
        run_cli(
            "policy",
            "create",
            "--principal",
            "w2",
            "--max-validity",
            "5m",
            "--replace",
            "--resource",
            REPOS,
            "--action",
            READ,
        )
    )
    refused(world.delegate(child["id"], "w2", ttl="10m"), "POLICY_VALIDITY_EXCEEDED")
    ok(world.delegate(child["id"], "w2", ttl="4m"))
    ok(run_cli("mandate", "revoke", child["id"], "--yes"))
    refused(world.delegate(child["id"], "w2", ttl="1m"), "SOURCE_INVALID")


def test_delegation_keeps_an_intent_binding(world: World) -> None:
    root = ok(world.issue("alice", "orch", depth=1, extra=("--intent", '{"task": 7}'))).json()
    inherited = ok(world.delegate(root["id"], "w1")).json()
    assert inherited["intent_hash"] == root["intent_hash"]
    refused(world.delegate(root["id"], "w2", extra=("--intent", '{"task": 8}')), "SCOPE_NOT_SUBSET")


def test_every_refusal_code_has_a_test_that_triggers_it() -> None:
    """Each documented refusal code is asserted by a test in this module (each runs in CI)."""
    missing = set(ISSUANCE_REFUSALS) - codes_asserted(__file__, "refused")
    assert not missing, f"no test triggers {sorted(missing)}"


# ---- the direction matrix, pair by pair ---------------------------------------------------
SOURCE_OF = {"human": "bob", "orchestrator": "orch", "worker": "w1", "service": "svc"}
TARGET_OF = {"human": "carol", "orchestrator": "orch2", "worker": "w2", "service": "svc2"}


@pytest.fixture
def matrix_world(world: World) -> World:
    world.register("human", "bob")
    world.register("human", "carol")
    world.register("service", "svc2")
    for name in ("bob", "carol", "svc2"):
        world.policy(name)
    return world


def test_issuance_direction_matrix(matrix_world: World) -> None:
    outcomes = {}
    for source in KINDS:
        for target in KINDS:
            result = matrix_world.issue(SOURCE_OF[source], TARGET_OF[target])
            outcomes[(source, target)] = result.code == 0
            if result.code != 0:
                assert result.code == ExitCode.DENIED and "may not grant" in result.stderr, result
    expected = {(s, t): may_grant(s, t) for s in KINDS for t in KINDS}
    assert outcomes == expected
    assert sum(expected.values()) == 4 + 3 + 2 + 0


def test_delegation_direction_matrix(matrix_world: World) -> None:
    outcomes = {}
    for source in KINDS:
        # A human grants each source a delegable mandate (human -> any is always allowed).
        held = ok(matrix_world.issue("alice", SOURCE_OF[source], depth=2)).json()["id"]
        for target in KINDS:
            result = matrix_world.delegate(held, TARGET_OF[target])
            outcomes[(source, target)] = result.code == 0
            if result.code == 0:
                assert matrix_world.validate(result.json()["id"]).code == 0
            else:
                assert result.code == ExitCode.DENIED and "may not grant" in result.stderr, result
    assert outcomes == {(s, t): may_grant(s, t) for s in KINDS for t in KINDS}


# ---- issue 13: no loophole in issuance and delegation --------------------------------------
def test_a_deactivated_policy_never_widens_delegation(world: World) -> None:
    """Deactivating a worker's tight policy used to lift every bound on what could be
    delegated to it; now no active policy means NO_ACTIVE_POLICY, as for issuance."""
    root = ok(world.issue("alice", "orch", depth=2, ttl="30m")).json()
    tight = ok(
        run_cli(
            "policy", "create", "--principal", "w1", "--max-validity", "5m", "--replace",
            "--resource", REPOS, "--action", READ, "--json",
        )
    ).json()["id"]  # fmt: skip
    refused(world.delegate(root["id"], "w1", actions=(WRITE,), ttl="4m"), "POLICY_ACTION_EXCEEDED")
    refused(world.delegate(root["id"], "w1", ttl="20m"), "POLICY_VALIDITY_EXCEEDED")
    ok(run_cli("policy", "deactivate", tight, "--yes"))
    refused(world.delegate(root["id"], "w1", actions=(WRITE,), ttl="20m"), "NO_ACTIVE_POLICY")
    refused(world.delegate(root["id"], "w1"), "NO_ACTIVE_POLICY")
    refused(world.issue("alice", "w1"), "NO_ACTIVE_POLICY")
    listed = ok(run_cli("mandate", "list", "--subject", "w1", "--json")).json()
    assert listed == []


def test_delegating_from_a_source_expired_within_the_leeway_is_refused(world: World) -> None:
    """Within the clock leeway validation still accepts an expired source; delegating from it
    used to sign a child that expires before it starts (and crashed the CLI later)."""
    root = ok(world.issue("alice", "orch", depth=1, ttl="60s")).json()
    with time_machine.travel(root["expires_at"] + 10, tick=False):
        assert world.validate(root["id"]).code == 0  # within the 30 s leeway
        result = world.delegate(root["id"], "w1")
        refused(result, "SOURCE_EXPIRED")
        assert "expired" in result.stderr and "This is a bug" not in result.stderr
        rows = ok(run_cli("mandate", "list", "--json")).json()
    assert [r["id"] for r in rows] == [root["id"]]
    assert ok(run_cli("ledger", "verify")).code == 0


def test_grants_are_declared_pairs_not_the_cross_product(world: World) -> None:
    """The catalog declares read on repos and comment on issues. A mandate for {repos,
    issues} x {read, comment} allows those two pairs, never comment on repos."""
    both = ok(
        world.issue("alice", "orch", resources=(REPOS, ISSUES), actions=(READ, COMMENT), depth=1)
    ).json()
    assert sorted(both["grants"]) == [[ISSUES, COMMENT], [REPOS, READ]]
    assert world.validate(both["id"], READ, REPOS).code == 0
    assert world.validate(both["id"], COMMENT, ISSUES).code == 0
    for action, resource in ((COMMENT, REPOS), (READ, ISSUES)):
        denied = world.validate(both["id"], action, resource)
        assert denied.code == ExitCode.DENIED, denied
        assert denied.json()["reason_code"] == "ACTION_OUT_OF_SCOPE"
    # An action declared on none of the mandate's resources is refused at issuance.
    lone = world.issue("alice", "orch", resources=(REPOS,), actions=(READ, COMMENT))
    assert lone.code == ExitCode.INVALID and "declared on none" in lone.stderr, lone
    # A catalog change after issuance widens nothing the token grants (offline verifiers
    # read the pairs from the token), and delegation takes only the source's pairs.
    ok(
        run_cli(
            "provider", "update", "github", "--resource", "repos", "--resource", "issues",
            "--action", "repos:read", "--action", "repos:write", "--action", "issues:comment",
            "--action", "issues:read",
        )
    )  # fmt: skip
    assert world.validate(both["id"], READ, ISSUES).code == ExitCode.DENIED
    refused(
        world.delegate(both["id"], "w1", resources=(ISSUES,), actions=(READ,)),
        "SCOPE_NOT_SUBSET",
    )
    child = ok(world.delegate(both["id"], "w1", resources=(ISSUES,), actions=(COMMENT,))).json()
    assert child["grants"] == [[ISSUES, COMMENT]]
