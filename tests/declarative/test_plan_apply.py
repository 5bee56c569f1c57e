"""Every change kind through `caracal plan` and `caracal apply`, on the real store."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from caracal.cli.exit_codes import CHANGES_PENDING, ExitCode
from caracal.services.facade import Caracal
from tests.declarative.conftest import GH_ENV, GH_TOKEN, build_source, cli, ok, write


def exported(workspace: str) -> dict[str, Any]:
    return yaml.safe_load(ok(cli(workspace, "export")).stdout)


def entry(state: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    key = "principal" if section == "policies" else "name"
    return next(e for e in state[section] if e[key] == name)


def drop(state: dict[str, Any], section: str, name: str) -> None:
    key = "principal" if section == "policies" else "name"
    state[section] = [e for e in state[section] if e[key] != name]


def every_change(state: dict[str, Any]) -> dict[str, Any]:
    """From the source workspace's export: each kind of change to each kind of thing."""
    state["providers"].append(
        {
            "name": "wiki",
            "base_url": "https://wiki.example.com",
            "resources": [{"id": "pages"}],
            "actions": [{"resource": "pages", "id": "read"}],
        }
    )  # + provider (widens: new actions)
    github = entry(state, "providers", "github")
    github["actions"].append({"resource": "issues", "id": "close"})  # ~ provider (widens)
    drop(state, "providers", "docs")  # - provider
    state["principals"].append({"name": "bob", "kind": "worker"})  # + principal
    entry(state, "principals", "w2")["status"] = "active"  # ~ principal (reactivated: widens)
    entry(state, "principals", "w1")["status"] = "suspended"  # ~ principal (narrows)
    drop(state, "principals", "alice")  # - principal: suspended with --allow-suspend
    state["policies"].append(
        {
            "principal": "bob",
            "max_validity": "10m",
            "resources": ["provider:wiki:resource:*"],
            "actions": ["provider:wiki:action:read"],
        }
    )  # + policy (widens)
    orch = entry(state, "policies", "orch")  # ~ policy (narrows: a shorter validity, and
    orch["max_validity"] = "30m"  # one resource where it had all of them)
    orch["resources"] = ["provider:github:resource:repos"]
    drop(state, "policies", "w2")  # - policy
    entry(state, "tools", "read_file")["description"] = "Read a file"  # ~ tool
    state["tools"].append(
        {
            "name": "list_dir",
            "server": "files",
            "resource": "provider:files:resource:fs",
            "action": "provider:files:action:read",
        }
    )  # + tool
    state["settings"]["validation.clock_leeway_seconds"] = 60  # ~ setting (widens)
    return state


@pytest.fixture
def source(backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(GH_ENV, GH_TOKEN)
    build_source("src")
    return "src"


def test_every_change_kind_is_planned_marked_and_applied(source: str, tmp_path: Path) -> None:
    desired = every_change(exported(source))
    path = write(tmp_path / "state.yaml", yaml.safe_dump(desired, sort_keys=False))
    planned = ok(cli(source, "plan", "-f", str(path), "--json", "--allow-suspend")).json()
    seen = {(c["op"], c["kind"], c["name"]): c for c in planned["changes"]}
    assert set(seen) == {
        ("+", "provider", "wiki"),
        ("~", "provider", "github"),
        ("-", "provider", "docs"),
        ("+", "principal", "bob"),
        ("~", "principal", "w2"),
        ("~", "principal", "w1"),
        ("-", "principal", "alice"),
        ("+", "policy", "bob"),
        ("~", "policy", "orch"),
        ("-", "policy", "w2"),
        ("~", "tool", "read_file"),
        ("+", "tool", "list_dir"),
        ("~", "setting", "validation.clock_leeway_seconds"),
    }
    widening = {key for key, change in seen.items() if change["widens_authority"]}
    assert widening == {
        ("+", "provider", "wiki"),
        ("~", "provider", "github"),
        ("~", "principal", "w2"),
        ("+", "policy", "bob"),
        ("~", "setting", "validation.clock_leeway_seconds"),
    }
    assert "adds action issues:close" in seen[("~", "provider", "github")]["widening"]
    assert seen[("-", "principal", "alice")]["action"] == "suspend"
    assert seen[("-", "policy", "w2")]["action"] == "deactivate"
    assert planned["summary"] == {"create": 4, "change": 6, "remove": 3, "widening": 5}

    text = ok(cli(source, "plan", "-f", str(path))).stdout
    assert "~ change principal w2  [widens authority: reactivates a principal]" in text
    assert "- suspend principal alice  [needs --allow-suspend]" in text
    assert "    + action issues:close" in text

    pending = cli(source, "plan", "-f", str(path), "--detailed-exitcode")
    assert pending.code == CHANGES_PENDING

    applied = ok(cli(source, "apply", "-f", str(path), "--yes", "--allow-suspend", "--json"))
    assert applied.json()["summary"]["create"] == 4
    # The workspace is now what the file says: nothing more to do, and the export says it.
    assert ok(cli(source, "plan", "-f", str(path), "--detailed-exitcode")).code == 0
    after = exported(source)
    assert [p["name"] for p in after["providers"]] == ["files", "github", "wiki"]
    statuses = {p["name"]: p["status"] for p in after["principals"]}
    assert statuses == {
        "alice": "suspended",
        "bob": "active",
        "orch": "active",
        "svc": "revoked",
        "w1": "suspended",
        "w2": "active",
    }  # alice suspended, never deleted
    assert [p["principal"] for p in after["policies"]] == ["bob", "orch", "w1"]
    assert entry(after, "tools", "read_file")["description"] == "Read a file"
    assert after["settings"]["validation.clock_leeway_seconds"] == 60

    # Each change is its own ledger event, and one event names the file and the plan.
    events = ok(cli(source, "ledger", "list", "--json", "--limit", "200")).json()
    types = [e["type"] for e in events]
    for kind in (
        "provider.added",
        "provider.updated",
        "provider.removed",
        "principal.registered",
        "principal.activated",
        "principal.suspended",
        "policy.created",
        "policy.deactivated",
        "tool.removed",
        "tool.registered",
    ):
        assert kind in types, kind
    applied_event = next(e for e in events if e["type"] == "declarative.applied")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert applied_event["payload"]["file_sha256"] == sha
    assert applied_event["payload"]["summary"] == planned["summary"]
    ok(cli(source, "ledger", "verify"))


def test_suspensions_need_the_flag_and_nothing_is_half_applied(source: str, tmp_path: Path) -> None:
    desired = every_change(exported(source))
    path = write(tmp_path / "state.yaml", yaml.safe_dump(desired, sort_keys=False))
    before = ok(cli(source, "export")).stdout
    refused = cli(source, "apply", "-f", str(path), "--yes")
    assert refused.code == ExitCode.REFUSED
    assert "pass --allow-suspend" in refused.stderr
    assert ok(cli(source, "export")).stdout == before

    # A change the store refuses half-way (a scope no provider declares) undoes the others.
    entry(desired, "policies", "bob")["actions"] = ["provider:wiki:action:nope"]
    path = write(tmp_path / "state.yaml", yaml.safe_dump(desired, sort_keys=False))
    failed = cli(source, "apply", "-f", str(path), "--yes", "--allow-suspend")
    assert failed.code == ExitCode.INVALID, failed
    assert failed.stderr.startswith("error: Cannot create policy bob: ")
    assert "Nothing was applied." in failed.stderr
    assert ok(cli(source, "export")).stdout == before
    assert "clock_leeway_seconds: 45" in before  # config.yaml was put back too


def test_a_stale_plan_is_refused(source: str, tmp_path: Path) -> None:
    state = exported(source)
    state["principals"].append({"name": "carol", "kind": "human"})
    path = write(tmp_path / "state.yaml", yaml.safe_dump(state, sort_keys=False))
    saved = tmp_path / "plan.json"
    ok(cli(source, "plan", "-f", str(path), "--out", str(saved)))

    # Someone changes the workspace by hand after the plan was reviewed.
    ok(cli(source, "principal", "register", "--kind", "worker", "--name", "w9"))
    stale = cli(source, "apply", "-f", str(path), "--plan-file", str(saved), "--yes")
    assert stale.code == ExitCode.CONFLICT
    assert "changed since the plan was made" in stale.stderr
    names = [p["name"] for p in ok(cli(source, "principal", "list", "--json")).json()]
    assert "carol" not in names

    # The file changed since the plan: refused too.
    ok(cli(source, "plan", "-f", str(path), "--out", str(saved), "--force"))
    write(path, path.read_text() + "# edited after review\n")
    edited = cli(source, "apply", "-f", str(path), "--plan-file", str(saved), "--yes")
    assert edited.code == ExitCode.CONFLICT
    assert "The file changed since" in edited.stderr

    # A fresh plan applies (w9 is not in the file, so it needs --allow-suspend).
    ok(cli(source, "plan", "-f", str(path), "--out", str(saved), "--allow-suspend", "--force"))
    ok(cli(source, "apply", "-f", str(path), "--plan-file", str(saved), "--allow-suspend"))
    names = [p["name"] for p in ok(cli(source, "principal", "list", "--json")).json()]
    assert "carol" in names


def test_drift_shows_hand_changes_since_the_last_apply(source: str, tmp_path: Path) -> None:
    assert cli(source, "plan", "--drift").code == ExitCode.NOT_FOUND
    path = write(tmp_path / "state.yaml", ok(cli(source, "export")).stdout)
    assert "No changes" in ok(cli(source, "apply", "-f", str(path), "--yes")).stdout
    ok(cli(source, "principal", "activate", "w2"))
    ok(cli(source, "tool", "remove", "read_file", "--yes"))
    drift = cli(source, "plan", "--drift", "--detailed-exitcode")
    assert drift.code == CHANGES_PENDING
    assert "~ change principal w2" in drift.stdout
    assert "+ create tool read_file" in drift.stdout
    assert GH_TOKEN not in ok(cli(source, "ledger", "list", "--json", "--limit", "500")).stdout
    # The same list, from the facade a dashboard reads.
    with Caracal.open(source) as app:
        drift = app.declarative.drift()
    assert drift is not None
    assert [(c.op, c.kind, c.name) for c in drift.changes] == [
        ("~", "principal", "w2"),
        ("+", "tool", "read_file"),
    ]


def test_what_cannot_change_is_named_and_nothing_applies(source: str, tmp_path: Path) -> None:
    state = exported(source)
    entry(state, "principals", "orch")["kind"] = "human"  # a kind is fixed at registration
    entry(state, "principals", "svc")["status"] = "active"  # a revoked principal stays revoked
    state["principals"].append({"name": "zoe", "kind": "human"})
    path = write(tmp_path / "state.yaml", yaml.safe_dump(state, sort_keys=False))
    planned = ok(cli(source, "plan", "-f", str(path)))
    assert "! principal orch is of kind orchestrator; a kind cannot change" in planned.stdout
    assert "! principal svc is revoked; it cannot become active" in planned.stdout
    refused = cli(source, "apply", "-f", str(path), "--yes")
    assert refused.code == ExitCode.CONFLICT
    assert "(and 1 more)" in refused.stderr
    names = [p["name"] for p in ok(cli(source, "principal", "list", "--json")).json()]
    assert "zoe" not in names
