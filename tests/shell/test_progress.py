"""Long commands show their progress at a terminal (phase, count, rate) and stay silent for
scripts: with `--json`, with `--quiet`, or when stderr is not a terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.tmux import terminal, tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")

EVENTS = 300_000
COUNT = re.compile(r"(\d+)/(\d+) events")


@pytest.fixture(scope="module")
def big_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose ledger takes a few seconds to verify (filled the way the benchmark
    fills it: validation events, 10,000 per transaction)."""
    home = tmp_path_factory.mktemp("progress") / "home"
    env = {**os.environ, "CARACAL_HOME": str(home), "CARACAL_KEYRING": "off"}
    code = (
        "from bench.authority import validation_events\n"
        "from caracal.services.facade import Caracal\n"
        "from caracal.services.workspaces import WorkspaceManager\n"
        "WorkspaceManager().create('big')\n"
        "app = Caracal.open('big')\n"
        f"events = validation_events(10_000)\n"
        f"for _ in range({EVENTS // 10_000}):\n"
        "    app.store.write(lambda conn: app.ledger.record(conn, *events))\n"
        "app.close()\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=600)
    return home


def _env(home: Path) -> dict[str, str]:
    return {
        "CARACAL_HOME": str(home),
        "CARACAL_KEYRING": "off",
        "PATH": os.environ["PATH"],
        "TERM": "xterm-256color",
    }


def test_ledger_verify_shows_its_progress_moving_then_the_verdict(big_home: Path) -> None:
    command = [sys.executable, "-m", "caracal", "ledger", "verify"]
    with terminal(command, _env(big_home), width=120, height=20) as term:
        seen: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            screen = term.screen()
            if "Ledger intact" in screen:
                break
            found = COUNT.search(screen)
            if found and "Verifying the ledger" in screen and "events/s" in screen:
                done = int(found.group(1))
                if not seen or done != seen[-1]:
                    seen.append(done)
            time.sleep(0.05)
        final = term.wait_for("Ledger intact", timeout=120)
    assert len(seen) >= 2 and seen == sorted(seen), seen
    # The display goes away: the verdict is what stays on the screen.
    assert "Verifying the ledger" not in final


@pytest.mark.parametrize("flag", ["--json", "--quiet"])
def test_no_display_with_json_or_quiet(big_home: Path, flag: str) -> None:
    argv = ["ledger", "verify", "--json"] if flag == "--json" else ["--quiet", "ledger", "verify"]
    done = "events" if flag == "--json" else "Ledger intact"
    command = [sys.executable, "-m", "caracal", *argv]
    with terminal(command, _env(big_home), width=120, height=40) as term:
        frames = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            frames.append(term.screen())
            if done in frames[-1] and ("}" in frames[-1] or flag == "--quiet"):
                break
            time.sleep(0.05)
    assert not any("Verifying the ledger" in f for f in frames), frames[-1]


def test_no_display_when_stderr_is_not_a_terminal(big_home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "caracal", "ledger", "verify"],
        env={**os.environ, **_env(big_home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout.startswith("Ledger intact")


def test_json_verify_prints_only_the_report(
    big_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARACAL_HOME", str(big_home))
    monkeypatch.setenv("CARACAL_KEYRING", "off")
    result = run_cli("ledger", "verify", "--json")
    assert result.code == 0 and json.loads(result.stdout)["ok"] is True
    assert result.stderr == ""
