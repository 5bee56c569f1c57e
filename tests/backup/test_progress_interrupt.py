"""ctrl+c at a real terminal while a backup, a verification or a restore is under way: exit
130, one line saying nothing was written, and nothing left behind (no archive or temporary
file, no workspace or hidden staging folder, the archive untouched)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.backup.test_progress_terminal import command
from tests.support.long_run import watch
from tests.support.tmux import tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _interrupted(home: Path, archive: Path, op: str) -> str:
    seen = watch(home, *command(op, home, archive), interrupt_after=2)
    assert seen.code == 130, seen.final
    lines = [line for line in seen.final.splitlines() if line.startswith("interrupted: ")]
    assert len(lines) == 1 and "nothing was written" in lines[0], seen.final
    assert "━" not in seen.final and "Traceback" not in seen.final
    return lines[0]


def test_ctrl_c_during_create_leaves_no_archive(big: tuple[Path, Path]) -> None:
    home, archive = big
    cache = home / "workspaces" / "big" / "cache"
    before, cached = listing(home), listing(cache)
    _interrupted(home, archive, "create")
    assert listing(home) == before  # no new.tar.gz, no .new.tar.gz.*.partial
    assert listing(cache) == cached  # no backup-* work folder


def test_ctrl_c_during_verify_changes_nothing(big: tuple[Path, Path]) -> None:
    home, archive = big
    before, sha = listing(home), digest(archive)
    _interrupted(home, archive, "verify")
    assert listing(home) == before and digest(archive) == sha


def test_ctrl_c_during_restore_creates_no_workspace(big: tuple[Path, Path]) -> None:
    home, archive = big
    workspaces = listing(home / "workspaces")
    line = _interrupted(home, archive, "restore")
    assert "no workspace copy" in line
    assert listing(home / "workspaces") == workspaces  # no copyN, no .creating-copyN-*
