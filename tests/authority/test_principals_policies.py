"""Principal registration and lifecycle; policies and their patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from caracal.core.errors import ExitCode
from tests.authority.conftest import READ, REPOS, World, ok
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
    ok(run_cli("principal", "suspend", "w1"))
    again = run_cli("principal", "suspend", "w1")
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
    ok(run_cli("policy", "deactivate", new))
    assert run_cli("policy", "deactivate", new).code == ExitCode.CONFLICT
    assert world.issue("alice", "orch", actions=(READ,)).code == ExitCode.DENIED
    # Deactivating a policy stops new grants; it does not revoke what was granted.
    assert world.validate(mandate).code == 0
    assert run_cli("policy", "show", "pol_missing").code == ExitCode.NOT_FOUND
