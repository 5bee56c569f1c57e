"""`caracal shell -c LINE` and `caracal shell` reading piped lines, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import caracal.cli.main
from tests.shell.escapes import ESCAPE_ATTEMPTS
from tests.support.cli import run_cli, run_cli_process


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to start a process or replace this one."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    for name in ("system", "popen", "execv", "execve", "execvp", "execvpe", "fork"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(os, "posix_spawn", forbidden)
    monkeypatch.setattr(os, "posix_spawnp", forbidden)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every call of the CLI's `run`, the `caracal shell ...` one included."""
    calls: list[list[str]] = []
    real = caracal.cli.main.run

    def spy(argv: list[str] | None = None) -> int:
        calls.append(list(argv or []))
        return real(argv)

    monkeypatch.setattr(caracal.cli.main, "run", spy)
    return calls


def test_one_line_runs_a_real_command_and_returns_its_code(home: Path) -> None:
    created = run_cli("shell", "-c", "workspace create demo")
    assert created.code == 0, created
    listed = run_cli("shell", "--command", "caracal principal list --json")
    assert listed.code == 0, listed
    assert json.loads(listed.stdout) == []
    registered = run_cli("shell", "-c", "principal register --kind human --name 'ada'")
    assert registered.code == 0, registered
    assert [p["name"] for p in run_cli("shell", "-c", "principal list --json").json()] == ["ada"]
    missing = run_cli("shell", "-c", "principal show nobody")
    assert missing.code == 3, missing
    assert "[exit" not in missing.stderr  # the exit code says it


def test_one_line_keeps_the_workspace_the_shell_was_given(home: Path) -> None:
    assert run_cli("workspace", "create", "one").code == 0
    assert run_cli("workspace", "create", "two").code == 0
    current = run_cli("--workspace", "two", "shell", "-c", "workspace current --json")
    assert current.code == 0, current
    assert current.json()["name"] == "two"


@pytest.mark.parametrize("line", ESCAPE_ATTEMPTS)
def test_one_line_refuses_escape_attempts_with_a_usage_error(
    line: str, home: Path, runs: list[list[str]], no_processes: None
) -> None:
    result = run_cli("shell", "-c", line)
    assert result.code == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert runs == [["shell", "-c", line]]  # nothing ran after the shell itself
    assert not home.exists() or not (home / "workspaces").exists()


def test_help_and_typos(home: Path) -> None:
    listed = run_cli("shell", "-c", "help")
    assert listed.code == 0
    assert "principal" in listed.stdout
    assert "Register principals" in listed.stdout
    assert "flow" not in listed.stdout.split("Shell:")[0]
    detail = run_cli("shell", "-c", "help principal register")
    assert detail.code == 0, detail
    assert "--kind" in detail.stdout
    typo = run_cli("shell", "-c", "principl list")
    assert typo.code == 2
    assert typo.stderr == "error: unknown command 'principl'. Did you mean 'principal'?\n"


def test_piped_lines_run_in_order_and_the_last_code_is_returned(home: Path) -> None:
    script = "\n".join(
        [
            "# set up",
            "workspace create demo",
            "sh",
            "caracal principal register --kind human --name alice",
            "",
            "principal list --json",
        ]
    )
    result = run_cli("shell", input=script + "\n")
    assert result.code == 0, result
    assert "caracal>" not in result.stdout
    assert "caracal>" not in result.stderr
    assert "error: unknown command 'sh'" in result.stderr
    assert "[exit 2]" in result.stderr
    listed = _last_json(result.stdout)
    assert [p["name"] for p in listed] == ["alice"]

    failing = run_cli("shell", input="workspace list\nprincipal show nobody\n")
    assert failing.code == 3, failing
    assert "[exit 3]" in failing.stderr


def test_piped_exit_stops_and_commands_cannot_swallow_the_script(home: Path) -> None:
    # `config encrypt` reads stdin to its end; in a script it gets nothing, not the next lines.
    script = "workspace create demo\nconfig encrypt\nworkspace current --json\nexit\nsh\n"
    result = run_cli("shell", input=script)
    assert result.code == 0, result
    assert '"name": "demo"' in result.stdout
    assert "unknown command 'sh'" not in result.stderr


def test_piped_refused_last_line_gives_a_usage_code(home: Path) -> None:
    result = run_cli("shell", input="workspace list\nexit; sh\n")
    assert result.code == 2, result


def test_a_real_process_reading_a_pipe(home: Path) -> None:
    script = b"workspace create demo\nprincipal list\xff\nprincipal list --json\n"
    env = {**os.environ, "CARACAL_HOME": str(home), "CARACAL_KEYRING": "off"}
    proc = subprocess.run(
        [*_python_caracal(), "shell"], input=script, capture_output=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc
    assert _last_json(proc.stdout.decode()) == []
    assert b"not valid UTF-8" in proc.stderr
    assert b"caracal>" not in proc.stdout

    direct = run_cli_process("shell", "-c", "principal show nobody", env=env)
    assert direct.code == 3, direct


def _python_caracal() -> list[str]:
    return [sys.executable, "-m", "caracal"]


def _last_json(stdout: str) -> object:
    """The JSON a listing printed at the end of other commands' output."""
    start = (
        0 if stdout.startswith(("[", "{")) else max(stdout.rfind("\n["), stdout.rfind("\n{")) + 1
    )
    return json.loads(stdout[start:])
