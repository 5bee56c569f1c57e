"""The interactive history file: private to its owner and bounded."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caracal.shell.repl import HISTORY_LINES, save_history


@pytest.fixture
def readline() -> Iterator[Any]:
    module = pytest.importorskip("readline")
    module.clear_history()
    module.set_history_length(HISTORY_LINES)
    yield module
    module.clear_history()
    module.set_history_length(-1)


def test_history_is_private_and_bounded(readline: Any, tmp_path: Path) -> None:
    history = tmp_path / "home" / "shell_history"
    history.parent.mkdir()
    history.write_text("old line\n")
    history.chmod(0o644)
    for number in range(HISTORY_LINES + 500):
        readline.add_history(f"principal show p{number}")
    save_history(readline, history)
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    lines = history.read_text().splitlines()
    assert len(lines) <= HISTORY_LINES + 1  # libedit adds a header line
    assert lines[-1] == f"principal show p{HISTORY_LINES + 499}"


def test_history_creates_a_private_home(readline: Any, tmp_path: Path) -> None:
    history = tmp_path / "new-home" / "shell_history"
    readline.add_history("workspace list")
    save_history(readline, history)
    assert stat.S_IMODE(history.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "workspace list" in history.read_text()
