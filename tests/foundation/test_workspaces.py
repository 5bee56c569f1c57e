"""`caracal workspace ...` through the real CLI entry point, on both store backends."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.support.cli import run_cli, run_cli_process


def test_create_lays_out_a_private_workspace_and_activates_the_first(
    backend: str, home: Path
) -> None:
    result = run_cli("workspace", "create", "demo", "--json")
    assert result.code == 0, result
    info = result.json()
    assert info["name"] == "demo" and info["active"] is True
    assert info["store"] == ("PostgreSQL" if backend == "postgresql" else "SQLite")
    root = home / "workspaces" / "demo"
    for sub in ("", "logs", "backups", "cache", "keys"):
        mode = stat.S_IMODE((root / sub).stat().st_mode)
        assert mode == 0o700, (sub, oct(mode))
    assert (root / "config.yaml").is_file() and (root / "flow_state.json").is_file()
    assert (root / "store.db").exists() == (backend == "sqlite")
    listed = run_cli("workspace", "list", "--json").json()
    assert [w["name"] for w in listed] == ["demo"]
    assert run_cli("workspace", "current", "--json").json()["name"] == "demo"


@pytest.mark.parametrize("bad", ["../x", "A B", "", "current", "_lead", "x" * 65, "a/b", ".hidden"])
def test_bad_names_are_refused_and_nothing_is_created(home: Path, bad: str) -> None:
    result = run_cli("workspace", "create", bad)
    assert result.code == ExitCode.INVALID, result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    workspaces = home / "workspaces"
    assert not workspaces.exists() or list(workspaces.iterdir()) == []
    assert not (home.parent / "x").exists()


def test_duplicate_name_is_a_clear_conflict(backend: str, home: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    again = run_cli("workspace", "create", "demo")
    assert again.code == ExitCode.CONFLICT
    assert "already exists" in again.stderr


def _create_in_child(name: str, barrier: multiprocessing.synchronize.Barrier, queue) -> None:  # type: ignore[name-defined]
    from tests.support.cli import run_cli as child_run

    barrier.wait()
    result = child_run("workspace", "create", name)
    queue.put((result.code, result.stderr))


def test_two_processes_creating_one_name_exactly_one_wins(backend: str, home: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    children = [
        ctx.Process(target=_create_in_child, args=("race", barrier, queue)) for _ in range(2)
    ]
    for child in children:
        child.start()
    outcomes = sorted(queue.get(timeout=60) for _ in children)
    for child in children:
        child.join(30)
    assert [code for code, _ in outcomes] == [0, ExitCode.CONFLICT], outcomes
    assert "already exists" in outcomes[1][1]
    entries = sorted(p.name for p in (home / "workspaces").iterdir())
    assert entries == ["race"]  # no half-made or temporary directory left behind
    assert run_cli("workspace", "list", "--json").json()[0]["name"] == "race"


def test_use_switches_and_workspace_option_overrides_for_one_command(home: Path) -> None:
    assert run_cli("workspace", "create", "one").code == 0
    assert run_cli("workspace", "create", "two").code == 0
    assert run_cli("workspace", "current", "--json").json()["name"] == "one"
    assert run_cli("-w", "two", "workspace", "current", "--json").json()["name"] == "two"
    assert run_cli("workspace", "current", "--json").json()["name"] == "one"
    assert run_cli("workspace", "use", "two").code == 0
    assert run_cli("workspace", "current", "--json").json()["name"] == "two"
    missing = run_cli("workspace", "use", "nope")
    assert missing.code == ExitCode.NOT_FOUND and "does not exist" in missing.stderr
    override_missing = run_cli("--workspace", "nope", "provider", "list")
    assert override_missing.code == ExitCode.NOT_FOUND


def test_delete_refuses_active_needs_confirmation_and_removes_store(
    backend: str, home: Path
) -> None:
    assert run_cli("workspace", "create", "keep").code == 0
    assert run_cli("workspace", "create", "gone").code == 0
    active = run_cli("workspace", "delete", "keep", "--yes")
    assert active.code == ExitCode.CONFLICT and "switch first" in active.stderr
    no_tty = run_cli("workspace", "delete", "gone")
    assert no_tty.code == ExitCode.REFUSED and "--yes" in no_tty.stderr
    assert (home / "workspaces" / "gone").exists()
    assert run_cli("workspace", "delete", "gone", "--yes").code == 0
    assert not (home / "workspaces" / "gone").exists()
    assert [w["name"] for w in run_cli("workspace", "list", "--json").json()] == ["keep"]
    # The store really went: the name can be created again from scratch.
    assert run_cli("workspace", "create", "gone").code == 0


def test_no_workspace_yet_says_how_to_start(home: Path) -> None:
    result = run_cli("provider", "list")
    assert result.code == ExitCode.NOT_FOUND
    assert "caracal workspace create" in result.stderr


def test_real_process_exit_codes_and_clean_json(home: Path) -> None:
    env = {"CARACAL_HOME": str(home), "CARACAL_KEYRING": "off"}
    created = run_cli_process("workspace", "create", "demo", env=env)
    assert created.code == 0, created
    listed = run_cli_process("workspace", "list", "--json", env=env)
    assert listed.code == 0 and listed.json()[0]["name"] == "demo"
    bad = run_cli_process("workspace", "create", "Bad Name", env=env)
    assert bad.code == ExitCode.INVALID and "Traceback" not in bad.stderr
    usage = run_cli_process("workspace", "create", env=env)
    assert usage.code == ExitCode.USAGE


def test_leftovers_of_a_killed_create_are_swept(home: Path) -> None:
    (home / "workspaces" / ".creating-ghost-deadbeef").mkdir(parents=True)
    assert run_cli("workspace", "create", "real").code == 0
    assert sorted(os.listdir(home / "workspaces")) == ["real"]
