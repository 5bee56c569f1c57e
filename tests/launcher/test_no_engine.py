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
    assert "caracal flow --local" in findings[0]["next_step"]
