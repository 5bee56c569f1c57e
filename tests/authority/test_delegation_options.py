"""What the facade says may be delegated, before the form asks: the same rules as on submit."""

from __future__ import annotations

from caracal.services.facade import Caracal
from tests.authority.conftest import World, ok
from tests.support.cli import run_cli


def _options(source: str) -> dict:
    with Caracal.open("demo") as caracal:
        return caracal.mandates.delegation_options(source).to_dict()


def test_only_subjects_the_rules_allow_with_reasons_for_the_others(world: World) -> None:
    world.register("worker", "nopolicy")
    world.register("worker", "flat")
    world.policy("flat", "1h", 0)
    source = ok(world.issue("alice", "w1", depth=3)).json()["id"]
    options = _options(source)
    assert options["problem"] is None and options["source_depth"] == 3
    allowed = {o["name"]: o for o in options["allowed"]}
    refused = {o["name"]: o for o in options["refused"]}
    # A worker grants to workers and services only; the policy's depth caps the default.
    assert set(allowed) == {"w2", "svc", "flat"}
    assert allowed["svc"]["max_depth"] == 2 and allowed["flat"]["max_depth"] == 0
    assert refused["orch"]["reason_code"] == "DIRECTION_NOT_ALLOWED"
    assert refused["alice"]["reason_code"] == "DIRECTION_NOT_ALLOWED"
    assert refused["nopolicy"]["reason_code"] == "NO_ACTIVE_POLICY"
    assert "w1" not in allowed and "w1" not in refused  # it holds the source already
    # What is offered is what delegate accepts.
    ok(world.delegate(source, "flat", extra=("--delegation-depth", "0")))
    assert world.delegate(source, "orch").code != 0


def test_nothing_is_offered_from_a_revoked_or_exhausted_source(world: World) -> None:
    flat = ok(world.issue("alice", "orch", depth=0)).json()["id"]
    assert _options(flat)["problem_code"] == "DELEGATION_DEPTH_EXHAUSTED"
    source = ok(world.issue("alice", "orch", depth=2)).json()["id"]
    ok(run_cli("mandate", "revoke", source, "--reason", "left the team", "--yes"))
    options = _options(source)
    assert options["problem_code"] == "SOURCE_INVALID" and options["allowed"] == []
    assert "revoked" in options["problem"] and "left the team" in options["problem"]
