"""Workspace log file: every front end logs to `<workspace>/logs/caracal.log`, never the screen."""

from __future__ import annotations

import logging
import os
import stat
from logging.handlers import RotatingFileHandler
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class WorkspaceLogHandler(RotatingFileHandler):
    """Rotates at 5 MB, and reopens the file when someone else moved or deleted it (another
    process rotating it, an operator cleaning up), instead of writing into a vanished file."""

    def __init__(self, path: Path) -> None:
        # backslashreplace: a lone surrogate (from undecodable input) in a message must not
        # turn into a "--- Logging error ---" traceback on the user's terminal.
        super().__init__(
            path,
            maxBytes=5 * 1024 * 1024,
            backupCount=3,
            encoding="utf-8",
            errors="backslashreplace",
        )
        self._identity = self._current_identity()

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.baseFilename)
        except OSError:
            return None

    def _current_identity(self) -> tuple[int, int] | None:
        found = self._stat()
        return None if found is None else (found.st_dev, found.st_ino)

    def emit(self, record: logging.LogRecord) -> None:
        """One `stat` per line answers both questions, whether the file is still ours and
        whether the line makes it outgrow its size (every line is flushed, so the size on disk
        is where the next line goes); the line is formatted once."""
        try:
            found = self._stat()
            if found is None or (found.st_dev, found.st_ino) != self._identity:
                if not Path(self.baseFilename).parent.is_dir():
                    return  # the workspace itself is gone: never recreate its folders by logging
                if self.stream is not None:
                    self.stream.close()
                self.stream = self._open()
                found = self._stat()
                self._identity = None if found is None else (found.st_dev, found.st_ino)
            msg = self.format(record)
            if (
                found is not None
                and stat.S_ISREG(found.st_mode)  # never roll over anything but a regular file
                and found.st_size + len(msg) + 1 >= self.maxBytes
            ):
                self.doRollover()
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(msg + self.terminator)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def doRollover(self) -> None:
        super().doRollover()
        self._identity = self._current_identity()


_handlers: dict[Path, WorkspaceLogHandler] = {}


def attach_workspace_log(path: Path, level: str) -> None:
    root = logging.getLogger("caracal")
    root.setLevel(level)
    root.propagate = False
    for other, handler in list(_handlers.items()):
        if other != path:
            root.removeHandler(handler)
            handler.close()
            del _handlers[other]
    if path in _handlers:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = WorkspaceLogHandler(path)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    _handlers[path] = handler


def detach_workspace_log(path: Path) -> None:
    handler = _handlers.pop(path, None)
    if handler is not None:
        logging.getLogger("caracal").removeHandler(handler)
        handler.close()
