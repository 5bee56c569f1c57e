"""Reading the workspace log from its end: the last records, filtered, tracebacks included.

The log is written by `caracal.services.logs` (`%(asctime)s %(levelname)s %(name)s: %(message)s`,
rotated to `caracal.log.1`, `.2`, ...). `tail` reads backwards from the end of the file in blocks,
so a 5 MB log costs only the few blocks holding the records asked for; when the current file is
short it continues into the rotated `.1` file. A record's continuation lines (a traceback, a
multi-line message) belong to the record above them. A missing file is simply an empty log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from caracal.core.errors import ValidationError

LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
BLOCK = 64 * 1024
MAX_BYTES = 4 * 1024 * 1024  # how far back a filtered search may read, across both files
_HEADER = re.compile(
    r"^(?P<when>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:,\d{3})?) "
    r"(?P<level>[A-Z]+) (?P<logger>\S+): (?P<message>.*)$"
)


@dataclass(frozen=True)
class LogLine:
    """One log record; `detail` holds its continuation lines (e.g. a traceback)."""

    when: str
    level: str  # "" for lines before the first record of a file
    logger: str
    message: str
    detail: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        """Unknown levels (and lines before a file's first record) count as DEBUG."""
        return LEVELS.get(self.level, LEVELS["DEBUG"])

    @property
    def head(self) -> str:
        return f"{self.when} {self.level} {self.logger}: {self.message}" if self.level else ""

    @property
    def text(self) -> str:
        return "\n".join((self.head, *self.detail) if self.level else self.detail)

    def matches(self, min_rank: int, contains: str | None) -> bool:
        if self.rank < min_rank:
            return False
        return not contains or contains.casefold() in self.text.casefold()


def level_rank(level: str) -> int:
    try:
        return LEVELS[level.upper()]
    except KeyError:
        raise ValidationError(
            f"Unknown log level {level!r}; use one of {', '.join(LEVELS)}."
        ) from None


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def stamp(path: Path) -> tuple[tuple[int, int, int], ...]:
    """What changes whenever the log (or its rotation) changes: compare to skip a re-read."""
    out = []
    for candidate in (path, rotated(path)):
        try:
            info = candidate.stat()
        except OSError:
            out.append((0, -1, 0))
            continue
        out.append((info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(out)


def tail(
    path: Path,
    *,
    lines: int = 500,
    min_level: str = "INFO",
    contains: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> list[LogLine]:
    """The last `lines` records at `min_level` or above (and containing `contains`, case
    insensitive), oldest first. Reads at most `max_bytes` from the end of the log and its `.1`."""
    min_rank = level_rank(min_level)
    contains = contains.strip() if contains else None
    found: list[LogLine] = []  # newest first
    remaining, seen = max_bytes, set[int | None]()
    for candidate in (path, rotated(path)):
        if len(found) >= lines or remaining <= 0:
            break
        reader = _Backwards(candidate, remaining)
        with closing(reader.records()) as records:
            for record in records:
                if reader.inode in seen:  # rotated while we read: this file was read already
                    break
                if record.matches(min_rank, contains):
                    found.append(record)
                    if len(found) >= lines:
                        break
        seen.add(reader.inode)
        remaining -= reader.used
    found.reverse()
    return found


class _Backwards:
    """One file's records, newest first, read in blocks from its end, at most `budget` bytes.

    The file is opened once: if it is rotated meanwhile, the open handle still reads the file
    that was there, so every record comes out whole."""

    def __init__(self, path: Path, budget: int) -> None:
        self.path = path
        self.budget = budget
        self.used = 0
        self.inode: int | None = None

    def records(self) -> Generator[LogLine, None, None]:
        pending: list[str] = []  # continuation lines seen (newest first) before their header
        for line, first_line in self._lines():
            match = _HEADER.match(line)
            if match is None:
                pending.append(line)
                if first_line and any(pending):
                    # The file starts part-way through a record: keep those lines on their own.
                    yield LogLine("", "", "", "", tuple(reversed(pending)))
                continue
            yield LogLine(
                match["when"],
                match["level"],
                match["logger"],
                match["message"],
                tuple(reversed(pending)),
            )
            pending = []

    def _lines(self) -> Generator[tuple[str, bool], None, None]:
        """(line, is it the file's first line), last line first."""
        try:
            handle = self.path.open("rb")
        except OSError:  # missing, or rotated away between listing and opening
            return
        with handle:
            info = os.fstat(handle.fileno())
            self.inode = info.st_ino
            position, carry, last_block = info.st_size, b"", True
            while position > 0 and self.used < self.budget:
                size = min(BLOCK, position, self.budget - self.used)
                position -= size
                self.used += size
                handle.seek(position)
                parts = (handle.read(size) + carry).split(b"\n")
                carry = parts.pop(0)  # may go on in the block before this one
                if last_block and parts and parts[-1] == b"":
                    parts.pop()  # after the file's final newline
                last_block = False
                for raw in reversed(parts):
                    yield _decode(raw), False
            if position == 0 and info.st_size > 0:
                yield _decode(carry), True


def _decode(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", errors="replace")
