"""Workspace log file: every front end logs to `<workspace>/logs/caracal.log`, never the screen."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_handlers: dict[Path, RotatingFileHandler] = {}


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
    handler = RotatingFileHandler(path, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    _handlers[path] = handler


def detach_workspace_log(path: Path) -> None:
    handler = _handlers.pop(path, None)
    if handler is not None:
        logging.getLogger("caracal").removeHandler(handler)
        handler.close()
