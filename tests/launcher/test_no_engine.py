"""Without a Docker engine every launcher command says so in one sentence, with the way to
work without Docker, exit code 8, and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "args",
    [
        ["up"],
        ["down"],
        ["status", "--json"],
        ["logs"],
        ["flow"],
        ["cli", "principal", "list"],
        ["purge", "--force"],
        # Destructive stack commands take the same confirmation flags as every other.
        ["purge", "--yes"],
        ["purge", "-y"],
        ["reset", "--yes"],
        ["reset", "-y"],
    ],
)
def test_no_engine_is_one_clear_sentence(home: Path, args: list[str]) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CARACAL_HOME": str(home),
        "DOCKER_HOST": f"unix://{home}/no-docker.sock",
    }
    result = subprocess.run(
        [sys.executable, "-m", "caracal", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert result.returncode == 8, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "No Docker engine is reachable" in lines[0] and "caracal flow --local" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_doctor_reports_the_missing_engine_with_a_next_step(home: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CARACAL_HOME": str(home),
        "DOCKER_HOST": f"unix://{home}/x.sock",
    }
    result = subprocess.run(
        [sys.executable, "-m", "caracal", "doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 8
    import json

    findings = json.loads(result.stdout)
    assert findings[0]["check"] == "docker engine" and not findings[0]["ok"]
    assert findings[0]["detail"] == "no Docker socket", findings  # what is wrong, exactly
    assert "caracal flow --local" in findings[0]["next_step"]


def test_cli_local_runs_the_command_here_without_docker(home: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CARACAL_HOME": str(home),
        "CARACAL_KEYRING": "off",
        "DOCKER_HOST": f"unix://{home}/x.sock",
    }

    def caracal(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "caracal", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            input=stdin,
        )

    assert caracal("cli", "--local", "workspace", "create", "demo").returncode == 0
    listed = caracal("cli", "--local", "caracal", "workspace", "list", "--json")
    assert listed.returncode == 0 and '"demo"' in listed.stdout
    shell = caracal("cli", "--local", stdin="workspace current --json\n")
    assert shell.returncode == 0 and '"demo"' in shell.stdout
