"""`caracal.services.log_tail`: the end of the workspace log, filtered, read from the end."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from caracal.core.errors import ValidationError
from caracal.services import log_tail
from caracal.services.log_tail import stamp, tail

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def record(n: int, level: str = "INFO", message: str = "") -> str:
    return f"2025-01-02 03:04:{n % 60:02d},{n % 1000:03d} {level} caracal.test: {message or f'event {n}'}\n"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "caracal.log"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_file_or_folder_is_an_empty_log(log: Path) -> None:
    assert tail(log) == []
    assert tail(log.parent / "nope" / "caracal.log") == []
    write(log, "")
    assert tail(log) == []


def test_the_last_records_come_oldest_first(log: Path) -> None:
    write(log, "".join(record(n) for n in range(1000)))
    last = tail(log, lines=3)
    assert [r.message for r in last] == ["event 997", "event 998", "event 999"]
    assert last[0].level == "INFO" and last[0].logger == "caracal.test"
    assert last[-1].head == record(999).rstrip("\n")
    assert len(tail(log, lines=500)) == 500
    assert tail(log, lines=0) == []


def test_minimum_level_and_text_filter(log: Path) -> None:
    write(
        log,
        record(1, "DEBUG", "noisy detail")
        + record(2, "INFO", "opened workspace demo")
        + record(3, "WARNING", "slow store call")
        + record(4, "ERROR", "could not verify Demo ledger")
        + record(5, "CRITICAL", "disk full"),
    )
    assert [r.level for r in tail(log, min_level="DEBUG")] == [
        "DEBUG",
        "INFO",
        "WARNING",
        "ERROR",
        "CRITICAL",
    ]
    assert [r.level for r in tail(log, min_level="warning")] == ["WARNING", "ERROR", "CRITICAL"]
    assert [r.message for r in tail(log, min_level="DEBUG", contains="DEMO")] == [
        "opened workspace demo",
        "could not verify Demo ledger",
    ]
    assert tail(log, contains="nothing like this") == []
    with pytest.raises(ValidationError, match="Unknown log level"):
        tail(log, min_level="LOUD")


def test_the_level_filter_finds_rare_records_far_back(log: Path) -> None:
    lines = [record(n, "ERROR" if n % 400 == 0 else "INFO") for n in range(4000)]
    write(log, "".join(lines))
    errors = tail(log, lines=5, min_level="ERROR")
    assert [r.message for r in errors] == [f"event {n}" for n in (2000, 2400, 2800, 3200, 3600)]


def test_a_traceback_belongs_to_the_record_above(log: Path) -> None:
    write(
        log,
        record(1)
        + record(2, "ERROR", "flow task failed: open workspace")
        + "Traceback (most recent call last):\n"
        + '  File "x.py", line 1, in <module>\n'
        + "\n"
        + "RuntimeError: boom\n"
        + record(3, "DEBUG"),
    )
    last = tail(log, lines=1)
    assert len(last) == 1
    assert last[0].level == "ERROR"
    assert last[0].detail == (
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "",
        "RuntimeError: boom",
    )
    assert "RuntimeError: boom" in last[0].text
    assert [r.message for r in tail(log, contains="runtimeerror")] == [
        "flow task failed: open workspace"
    ]


def test_records_split_across_read_blocks_come_out_whole(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_tail, "BLOCK", 7)  # far smaller than a line
    body = "".join(record(n, "ERROR", f"message {n} é ü") + "  detail line\n" for n in range(50))
    write(log, body)
    last = tail(log, lines=50)
    assert [r.message for r in last] == [f"message {n} é ü" for n in range(50)]
    assert all(r.detail == ("  detail line",) for r in last)


def test_a_file_without_final_newline_and_with_crlf(log: Path) -> None:
    write(log, (record(1) + record(2)).replace("\n", "\r\n") + record(3).rstrip("\n"))
    assert [r.message for r in tail(log)] == ["event 1", "event 2", "event 3"]


def test_lines_before_the_first_record_stand_alone_at_debug(log: Path) -> None:
    write(log, "  ...end of a record cut by rotation\n" + record(1))
    assert [r.message for r in tail(log)] == ["event 1"]
    everything = tail(log, min_level="DEBUG")
    assert everything[0].level == "" and everything[0].text == (
        "  ...end of a record cut by rotation"
    )


def test_a_short_current_file_continues_into_the_rotated_one(log: Path) -> None:
    write(log.with_name("caracal.log.1"), "".join(record(n) for n in range(10)))
    write(log, record(10) + record(11))
    assert [r.message for r in tail(log, lines=4)] == [f"event {n}" for n in (8, 9, 10, 11)]
    assert len(tail(log, lines=100)) == 12
    # Only the current file when it holds enough.
    assert [r.message for r in tail(log, lines=2)] == ["event 10", "event 11"]
    # A rotated file and no current one (just rotated, nothing logged since).
    log.unlink()
    assert [r.message for r in tail(log, lines=2)] == ["event 8", "event 9"]


def test_reading_stops_at_the_byte_budget(log: Path) -> None:
    write(log, "".join(record(n, "ERROR" if n == 0 else "INFO") for n in range(2000)))
    size = log.stat().st_size
    assert [r.message for r in tail(log, min_level="ERROR", max_bytes=size)] == ["event 0"]
    assert tail(log, min_level="ERROR", max_bytes=size // 2) == []
    # Only whole records: the partial line at the budget's edge is dropped.
    near = tail(log, lines=10_000, max_bytes=1000)
    assert near and all(r.head == record(int(r.message.split()[1])).rstrip("\n") for r in near)


def test_a_real_rotating_handler(log: Path) -> None:
    log.parent.mkdir(parents=True)
    handler = RotatingFileHandler(log, maxBytes=2000, backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("caracal.test_log_tail")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        for n in range(200):
            logger.info("line %d", n)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it failed")
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert log.with_name("caracal.log.1").exists()
    last = tail(log, lines=30, min_level="DEBUG")
    assert [r.message for r in last[-2:]] == ["it failed", "after"]
    assert last[-2].detail[-1] == "ValueError: boom"
    numbers = [int(r.message.split()[1]) for r in last if r.message.startswith("line ")]
    assert numbers == list(range(numbers[0], 200))
    assert [r.message for r in tail(log, min_level="WARNING")] == ["it failed", "after"]


def test_stamp_changes_when_the_log_does(log: Path) -> None:
    empty = stamp(log)
    write(log, record(1))
    first = stamp(log)
    assert first != empty
    with log.open("a", encoding="utf-8") as handle:
        handle.write(record(2))
    assert stamp(log) != first
