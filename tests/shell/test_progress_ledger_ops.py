"""The ledger's long commands at a real terminal, on a workspace that takes seconds: the
export shows its progress moving (and nothing with `--quiet` or stderr not a terminal);
ctrl+c during an export or a verify exits 130 with one line and writes nothing (no export
file or temporary file, no remembered verification)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.long_run import build_big_workspace, caracal_argv, env_for, watch
from tests.support.tmux import tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")

EVENTS = 300_000  # a verify of 150,000 events can end before ctrl+c arrives


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ledger-progress") / "home"
    build_big_workspace(root, "big", EVENTS)
    return root


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_export_progress_moves_then_the_count(home: Path) -> None:
    out = home / "all.json"
    seen = watch(home, "-w", "big", "ledger", "export", "-o", str(out), "--force")
    assert seen.code == 0, seen.final
    assert seen.moved() >= 2, seen.displays
    assert {phase for phase, _ in seen.positions()} == {"Exporting the ledger"}
    assert "Exported" in seen.final and "━" not in seen.final
    assert out.stat().st_size > 0


def test_no_export_display_with_quiet_or_without_a_terminal(home: Path) -> None:
    out = home / "quiet.csv"
    seen = watch(home, "--quiet", "-w", "big", "ledger", "export", "-o", str(out), "--force")
    assert seen.code == 0 and "Exported" in seen.final, seen.final
    assert seen.displays == [] and "━" not in seen.final
    proc = subprocess.run(
        caracal_argv("-w", "big", "ledger", "export", "-o", str(out), "--force", "--format", "csv"),
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("Exported") and "━" not in proc.stderr, proc.stderr


def _one_interrupted_line(final: str) -> str:
    lines = [line for line in final.splitlines() if line.startswith("interrupted: ")]
    assert len(lines) == 1 and "nothing was written" in lines[0], final
    assert "━" not in final and "Traceback" not in final
    return lines[0]


def test_ctrl_c_during_export_writes_no_file(home: Path) -> None:
    out = home / "stopped.json"
    before = listing(home)
    seen = watch(home, "-w", "big", "ledger", "export", "-o", str(out), interrupt_after=2)
    assert seen.code == 130, seen.final
    _one_interrupted_line(seen.final)
    assert not out.exists()
    assert listing(home) == before  # no .stopped.json.*.tmp either


def test_ctrl_c_during_verify_remembers_nothing(home: Path) -> None:
    cache = home / "workspaces" / "big" / "cache"
    remembered = cache / "ledger-verified.json"
    before = remembered.read_bytes() if remembered.exists() else None
    seen = watch(home, "-w", "big", "ledger", "verify", interrupt_after=2)
    assert seen.code == 130, seen.final
    _one_interrupted_line(seen.final)
    assert (remembered.read_bytes() if remembered.exists() else None) == before
