"""Backups at a real terminal, on a workspace big enough to take a few seconds: create,
verify and restore show their progress moving before the result, and nothing with `--json`,
with `--quiet` or when stderr is not a terminal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.long_run import caracal_argv, env_for, watch
from tests.support.tmux import tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")


def command(op: str, home: Path, archive: Path, *extra: str) -> tuple[str, ...]:
    """`caracal ARGS` for one operation on the big workspace (`big` in tests/backup/conftest)."""
    if op == "create":
        return ("-w", "big", "backup", "create", "-o", str(home / "new.tar.gz"), "--force", *extra)
    if op == "verify":
        return ("backup", "verify", str(archive), *extra)
    name = f"copy{len(list((home / 'workspaces').iterdir()))}"
    return ("backup", "restore", str(archive), "--as", name, *extra)


@pytest.mark.parametrize("op", ["create", "verify", "restore"])
def test_progress_moves_then_the_result(big: tuple[Path, Path], op: str) -> None:
    home, archive = big
    seen = watch(home, *command(op, home, archive))
    assert seen.code == 0, seen.final
    assert seen.moved() >= 2, seen.displays
    phases = {phase for phase, _ in seen.positions()}
    expected = {"create": "Dumping", "verify": "Checking", "restore": "Loading"}[op]
    assert any(p.startswith(expected) for p in phases), phases
    # The display goes away: the result is what stays on the screen.
    assert "━" not in seen.final
    assert {"create": "Backup written", "verify": "Archive intact", "restore": "Restored"}[
        op
    ] in seen.final


@pytest.mark.parametrize("op", ["create", "verify", "restore"])
def test_no_display_with_json(big: tuple[Path, Path], op: str) -> None:
    home, archive = big
    seen = watch(home, *command(op, home, archive, "--json"))
    assert seen.code == 0, seen.final
    assert seen.displays == [] and "━" not in seen.final, seen.displays


def test_no_display_with_quiet(big: tuple[Path, Path]) -> None:
    home, archive = big
    seen = watch(home, "--quiet", *command("create", home, archive))
    assert seen.code == 0 and "Backup written" in seen.final, seen.final
    assert seen.displays == [] and "━" not in seen.final, seen.displays


@pytest.mark.parametrize("op", ["create", "verify"])
def test_no_display_when_stderr_is_not_a_terminal(big: tuple[Path, Path], op: str) -> None:
    home, archive = big
    proc = subprocess.run(
        caracal_argv(*command(op, home, archive)),
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "━" not in proc.stderr and "rows/s" not in proc.stderr, proc.stderr
