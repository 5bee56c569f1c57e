"""What a script relies on: `--json` errors are one JSON object on stderr, `-w NAME` is honoured
or refused by every command, and shell completion installs and completes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from tests.support.cli import Result, run_cli

ERROR_KEYS = {"error", "kind", "exit_code", "message"}


def _one_json_error(result: Result) -> dict[str, Any]:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result
    body = json.loads(lines[0])
    assert set(body) == ERROR_KEYS, body
    assert body["exit_code"] == result.code != 0, (body, result)
    assert body["message"] and isinstance(body["error"], str), body
    return body


def _json_commands() -> list[tuple[str, ...]]:
    """Every command of the tree that takes --json, as its path of names."""
    from caracal.cli.main import app

    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))
        if path and any("--json" in getattr(p, "opts", ()) for p in command.params):
            found.append(path)

    walk(typer.main.get_command(app), ())
    return found


def _filled(path: tuple[str, ...]) -> list[str]:
    """The command with a placeholder for each argument and required option."""
    from caracal.cli.main import app

    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    argv = list(path)
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument":
            argv.append("x")
        elif param.required:
            argv += [param.opts[0], "x"]
    return [*argv, "--json"]


def test_the_tree_has_the_json_commands_scripts_use() -> None:
    commands = _json_commands()
    for expected in [("principal", "list"), ("mandate", "validate"), ("status",), ("doctor",)]:
        assert expected in commands, commands
    assert len(commands) > 20


@pytest.mark.parametrize("path", _json_commands(), ids=" ".join)
def test_every_json_command_fails_as_one_json_object(home: Path, path: tuple[str, ...]) -> None:
    # `-w` naming no workspace: each command fails before touching anything, and says so
    # as JSON (a usage error for the commands `-w` cannot apply to, exit 3 for the others).
    result = run_cli("-w", "nowhere", *_filled(path))
    body = _one_json_error(result)
    assert body["exit_code"] in {2, 3, 5}, body
    assert result.stdout == "", result


def test_a_denial_with_json_names_its_reason_on_stderr(home: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    result = run_cli(
        "mandate",
        "validate",
        "--token",
        "not-a-token",
        "--action",
        "read",
        "--resource",
        "repo",
        "--json",
    )
    assert result.code == 6, result
    assert result.json()["allowed"] is False
    body = _one_json_error(result)
    assert body["error"] == result.json()["reason_code"] == "TOKEN_MALFORMED"
    assert body["kind"] == "denied"


def test_usage_errors_with_json_are_json_and_plain_text_without(home: Path) -> None:
    bad = run_cli("principal", "list", "--json", "--bogus")
    assert _one_json_error(bad) == {
        "error": "USAGE",
        "kind": "usage",
        "exit_code": 2,
        "message": "No such option: --bogus",
    }
    plain = run_cli("principal", "list", "--bogus")
    assert plain.code == 2 and "No such option: --bogus" in plain.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(plain.stderr)


def test_workspace_option_is_honoured_by_the_commands_that_act_on_one(home: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    assert run_cli("workspace", "create", "other").code == 0
    made = run_cli("-w", "other", "principal", "register", "--kind", "human", "--name", "ada")
    assert made.code == 0, made
    assert run_cli("principal", "list", "--json").json() == []
    assert [p["name"] for p in run_cli("-w", "other", "principal", "list", "--json").json()] == [
        "ada"
    ]
    # `workspace list` marks the workspace this command would act on.
    listed = {w["name"]: w for w in run_cli("-w", "other", "workspace", "list", "--json").json()}
    assert listed["other"]["selected"] and not listed["demo"]["selected"]
    assert listed["demo"]["active"] and not listed["other"]["active"]
    table = run_cli("-w", "other", "workspace", "list").stdout.splitlines()
    assert [row.split()[1] for row in table if row.startswith("*")] == ["other"]
    assert run_cli("-w", "other", "workspace", "current").stdout.startswith("other ")
    # The local shell runs its command on the named workspace too.
    through_cli = run_cli("-w", "other", "cli", "--local", "principal", "list", "--json")
    assert [p["name"] for p in through_cli.json()] == ["ada"], through_cli
    missing = run_cli("-w", "nope", "workspace", "list")
    assert missing.code == 3 and "nope" in missing.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("workspace", "create", "third"),
        ("workspace", "use", "demo"),
        ("workspace", "delete", "demo", "--yes"),
        ("status",),
        ("down",),
        ("doctor",),
    ],
    ids=" ".join,
)
def test_workspace_option_is_refused_where_it_cannot_apply(
    home: Path, argv: tuple[str, ...]
) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    assert run_cli("workspace", "create", "other", "--use").code == 0
    result = run_cli("-w", "demo", *argv)
    assert result.code == 2, result
    assert "'-w' / '--workspace'" in result.stderr and "does not apply" in result.stderr
    names = {w["name"]: w["active"] for w in run_cli("workspace", "list", "--json").json()}
    assert names == {"demo": False, "other": True}


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_install_completion_then_bash_completes_commands(tmp_path: Path, home: Path) -> None:
    bindir = Path(sys.executable).parent
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    installed = subprocess.run(
        [str(bindir / "caracal"), "--install-completion", "bash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert installed.returncode == 0, installed
    assert "source" in (tmp_path / ".bashrc").read_text()
    script = (
        "source ~/.bashrc\n"
        "complete_words() { COMP_WORDS=($1); COMP_CWORD=$2; _caracal_completion caracal;"
        ' echo "${COMPREPLY[*]}"; }\n'
        'complete_words "caracal princ" 1\n'
        'complete_words "caracal principal re" 2\n'
        "complete -p caracal\n"
    )
    completed = subprocess.run(
        ["bash", "--norc", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed
    lines = completed.stdout.splitlines()
    assert lines[0] == "principal", completed
    assert lines[1].split() == ["register", "revoke"], completed
    assert "_caracal_completion" in lines[2]
