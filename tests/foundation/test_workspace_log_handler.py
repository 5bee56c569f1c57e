"""`caracal.services.logs.WorkspaceLogHandler`: rotation by size, reopening a file someone
else moved or deleted, and never recreating a workspace that is gone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from caracal.services.logs import WorkspaceLogHandler


@pytest.fixture
def logger(tmp_path: Path) -> Iterator[tuple[logging.Logger, WorkspaceLogHandler, Path]]:
    path = tmp_path / "logs" / "caracal.log"
    path.parent.mkdir()
    handler = WorkspaceLogHandler(path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger(f"caracal.test_handler.{tmp_path.name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log, handler, path
    log.removeHandler(handler)
    handler.close()


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_every_line_is_on_disk_at_once_and_rotation_keeps_the_size(
    logger: tuple[logging.Logger, WorkspaceLogHandler, Path],
) -> None:
    log, handler, path = logger
    pad = "x" * 1000
    for n in range(6000):  # ~6 MB: one rotation at 5 MB
        log.info("line %d %s", n, pad)
        if n % 1500 == 0:  # flushed per line: readable before the process ends
            assert lines(path)[-1].startswith(f"INFO line {n} ")
    rotated = path.with_name("caracal.log.1")
    assert rotated.exists()
    assert rotated.stat().st_size <= handler.maxBytes
    assert path.stat().st_size <= handler.maxBytes
    numbers = [int(line.split()[2]) for line in lines(rotated) + lines(path)]
    assert numbers == list(range(6000))  # nothing lost or repeated across the rotation


def test_a_moved_or_deleted_file_is_reopened(
    logger: tuple[logging.Logger, WorkspaceLogHandler, Path],
) -> None:
    log, _, path = logger
    log.info("first")
    path.rename(path.with_name("moved.log"))
    log.info("second")
    assert lines(path) == ["INFO second"]
    assert lines(path.with_name("moved.log")) == ["INFO first"]
    path.unlink()
    log.info("third")
    assert lines(path) == ["INFO third"]


def test_a_removed_workspace_is_not_recreated_by_logging(
    logger: tuple[logging.Logger, WorkspaceLogHandler, Path],
) -> None:
    log, _, path = logger
    log.info("first")
    path.unlink()
    path.parent.rmdir()
    log.info("second")
    assert not path.parent.exists()
