"""Principal registration and lifecycle; policies and their patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.authority.conftest import COMMENT, READ, REPOS, World, ok
from tests.authority.ledger_world import sql
from tests.support.cli import run_cli


def test_register_prints_the_id_and_validates_input(world: World) -> None:
    listed = ok(run_cli("principal", "list", "--json")).json()
    assert {p["name"]: p["kind"] for p in listed}["w1"] == "worker"
    assert all(p["id"].startswith("pr_") and p["status"] == "active" for p in listed)
    created = ok(
        run_cli(
            "principal",
            "register",
            "--kind",
            "human",
            "--name",
            "dana",
            "--email",
            "dana@example.com",
            "--json",
        )
    ).json()
    assert created["kind"] == "human" and created["status"] == "active"
    shown = ok(run_cli("principal", "show", created["id"], "--json")).json()
    assert (
        shown["name"] == "dana" and shown["email"] == "dana@example.com" and len(shown["keys"]) == 1
    )
    assert (
        run_cli("principal", "register", "--kind", "robot", "--name", "x").code == ExitCode.INVALID
    )
    assert (
        run_cli("principal", "register", "--kind", "human", "--name", "bad name").code
        == ExitCode.INVALID
    )
    assert (
        run_cli("principal", "register", "--kind", "human", "--name", "e", "--email", "nope").code
        == ExitCode.INVALID
    )
    dup = run_cli("principal", "register", "--kind", "worker", "--name", "dana")
    assert dup.code == ExitCode.CONFLICT and "already exists" in dup.stderr
    assert run_cli("principal", "show", "ghost").code == ExitCode.NOT_FOUND


def test_private_keys_never_leave_the_vault(world: World, home: Path) -> None:
    from caracal.services.facade import Caracal
    from caracal.store import principal_rows

    with Caracal.open() as app, app.store.read() as conn:
        _kid, ref = principal_rows.active_key(conn, world.ids["alice"])
        private_der = app.vault.get(conn, ref)
    assert len(private_der) > 100
    for path in home.rglob("*"):
        if path.is_file():
            assert private_der not in path.read_bytes(), path
    shown = run_cli("principal", "show", "alice", "--json").stdout
    assert "PRIVATE" not in shown


def test_suspend_activate_transitions(world: World) -> None:
    ok(run_cli("principal", "suspend", "w1", "--yes"))
    again = run_cli("principal", "suspend", "w1", "--yes")
    assert again.code == ExitCode.CONFLICT and "already suspended" in again.stderr
    ok(run_cli("principal", "activate", "w1"))
    assert run_cli("principal", "activate", "w1").code == ExitCode.CONFLICT
    types = [e["type"] for e in ok(run_cli("ledger", "list", "--principal", "w1", "--json")).json()]
    assert types[-2:] == ["principal.suspended", "principal.activated"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), ("3600", 3600)]
)
def test_policy_durations(world: World, text: str, seconds: int) -> None:
    world.register("human", "dana")
    policy = ok(
        run_cli(
            "policy",
            "create",
            "--principal",
            "dana",
            "--max-validity",
            text,
            "--resource",
            REPOS,
            "--action",
            READ,
            "--json",
        )
    ).json()
    assert policy["max_validity"] == seconds and policy["status"] == "active"


def test_policy_patterns_must_match_the_catalog(world: World) -> None:
    world.register("human", "dana")
    base = ["policy", "create", "--principal", "dana", "--max-validity", "1h"]
    nothing = run_cli(*base, "--resource", "provider:gitlab:resource:*", "--action", READ)
    assert nothing.code == ExitCode.INVALID and "provider:gitlab:resource:*" in nothing.stderr
    wrong_kind = run_cli(*base, "--resource", READ, "--action", READ)
    assert wrong_kind.code == ExitCode.INVALID
    malformed = run_cli(*base, "--resource", "github:repos", "--action", READ)
    assert malformed.code == ExitCode.INVALID and "expected provider:" in malformed.stderr
    bad_duration = run_cli(
        *base, "--resource", REPOS, "--action", READ, "--max-validity", "forever"
    )
    assert bad_duration.code == ExitCode.INVALID
    glob = ok(
        run_cli(
            *base,
            "--resource",
            "provider:git*:resource:rep*",
            "--action",
            "provider:*:action:read",
            "--json",
        )
    )
    assert glob.json()["resources"] == ["provider:git*:resource:rep*"]


def test_one_active_policy_replace_and_deactivate(world: World) -> None:
    current = ok(run_cli("policy", "list", "--principal", "orch", "--json")).json()[0]["id"]
    dup = run_cli(
        "policy",
        "create",
        "--principal",
        "orch",
        "--max-validity",
        "1h",
        "--resource",
        REPOS,
        "--action",
        READ,
    )
    assert dup.code == ExitCode.CONFLICT and current in dup.stderr
    new = ok(
        run_cli(
            "policy",
            "create",
            "--principal",
            "orch",
            "--max-validity",
            "2h",
            "--resource",
            REPOS,
            "--action",
            READ,
            "--replace",
        )
    ).stdout.strip()
    statuses = {
        p["id"]: p["status"]
        for p in ok(run_cli("policy", "list", "--principal", "orch", "--json")).json()
    }
    assert statuses == {current: "inactive", new: "active"}
    assert ok(run_cli("policy", "show", new, "--json")).json()["max_validity"] == 7200
    mandate = ok(world.issue("alice", "orch", actions=(READ,), ttl="90m")).json()["id"]
    ok(run_cli("policy", "deactivate", new, "--yes"))
    assert run_cli("policy", "deactivate", new).code == ExitCode.CONFLICT
    assert world.issue("alice", "orch", actions=(READ,)).code == ExitCode.DENIED
    # Deactivating a policy stops new grants; it does not revoke what was granted.
    assert world.validate(mandate).code == 0
    assert run_cli("policy", "show", "pol_missing").code == ExitCode.NOT_FOUND


# ---- issue 13 ------------------------------------------------------------------------------
def _policy_of(name: str) -> str:
    rows = ok(run_cli("policy", "list", "--principal", name, "--json")).json()
    return next(r["id"] for r in rows if r["status"] == "active")


def test_deactivating_the_last_policy_of_a_holder_warns_and_offers_revocation(
    world: World,
) -> None:
    """The operator is told which mandates outlive the policy, and may revoke them (with
    everything delegated from them) in the same step."""
    held = ok(world.issue("alice", "orch", depth=1)).json()["id"]
    below = ok(world.delegate(held, "w1")).json()["id"]
    policy = _policy_of("orch")
    # No terminal, no --yes: refused, and nothing changed.
    refused = run_cli("policy", "deactivate", policy)
    assert refused.code == ExitCode.REFUSED, refused
    assert "orch holds 1 mandate(s) that stay valid" in refused.stderr
    assert "--yes" in refused.stderr
    assert _policy_of("orch") == policy
    # --yes alone keeps the mandates (and says so); --revoke-mandates revokes them too.
    kept = ok(run_cli("policy", "deactivate", policy, "--yes"))
    assert "stay valid" in kept.stderr and world.validate(held).code == 0
    policy = world.policy("orch")
    result = ok(run_cli("policy", "deactivate", policy, "--revoke-mandates", "--yes", "--json"))
    assert sorted(result.json()["revoked"]) == sorted([held, below])
    assert world.validate(held).json()["reason_code"] == "MANDATE_REVOKED"
    assert world.validate(below).json()["reason_code"] == "MANDATE_REVOKED"
    events = ok(run_cli("ledger", "list", "--type", "policy.deactivated", "--json")).json()
    assert events[-1]["payload"]["live_mandates"] == 1
    assert ok(run_cli("ledger", "verify")).code == 0


def test_a_name_that_looks_like_an_id_is_refused_and_ids_win(world: World) -> None:
    """`--name pr_<id of w1>` would make "name or id" lookups depend on row order."""
    victim = world.ids["w1"]
    for name in (victim, "pr_anything", "MND_x", "pol_1", "k_1", "dec_1"):
        result = run_cli("principal", "register", "--kind", "worker", "--name", name)
        assert result.code == ExitCode.INVALID and "reserved" in result.stderr, (name, result)
    # An older workspace may hold such a name: the id still wins, whatever the row order.
    sql("UPDATE principals SET name = :name WHERE id = :id", name=victim, id=world.ids["alice"])
    shown = ok(run_cli("principal", "show", victim, "--json")).json()
    assert shown["id"] == victim and shown["kind"] == "worker"


def test_authority_narrowing_commands_ask_and_refuse_without_a_terminal(world: World) -> None:
    mandate = ok(world.issue("alice", "orch")).json()["id"]
    for args in (
        ("principal", "rotate-key", "alice", "--revoke-old"),
        ("principal", "suspend", "orch"),
        ("principal", "revoke", "orch"),
        ("policy", "deactivate", _policy_of("w1")),
        ("mandate", "revoke", mandate),
    ):
        result = run_cli(*args)
        assert result.code == ExitCode.REFUSED and "--yes" in result.stderr, (args, result)
    # Nothing changed: the mandate still validates with the same key.
    assert world.validate(mandate).code == 0
    # A plain rotation retires nothing anyone relies on: it does not ask.
    ok(run_cli("principal", "rotate-key", "alice"))
    for args in (
        ("principal", "rotate-key", "alice", "--revoke-old", "-y"),
        ("principal", "suspend", "orch", "-y"),
    ):
        ok(run_cli(*args))
    # A state the command cannot change is a conflict before any question.
    again = run_cli("principal", "suspend", "orch")
    assert again.code == ExitCode.CONFLICT and "already suspended" in again.stderr


def test_a_policy_pattern_must_cover_a_declared_pair(world: World) -> None:
    """Comment is declared on issues only: a policy for repos and comment admits nothing."""
    result = run_cli(
        "policy", "create", "--principal", "w2", "--max-validity", "1h", "--replace",
        "--resource", REPOS, "--action", "provider:github:action:comment",
    )  # fmt: skip
    assert result.code == ExitCode.INVALID and "declared on none" in result.stderr, result
    # A wildcard covers only declared pairs: with repos alone it covers read and write.
    ok(
        run_cli(
            "policy", "create", "--principal", "w2", "--max-validity", "1h", "--replace",
            "--resource", REPOS, "--action", "provider:github:action:*",
        )
    )  # fmt: skip
    lone = world.issue("alice", "w2", resources=(REPOS,), actions=(READ, COMMENT))
    assert lone.code == ExitCode.INVALID
