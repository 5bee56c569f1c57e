"""`caracal logs`: the stack's container logs, prefixed by service, optionally followed."""

from __future__ import annotations

import queue
import sys
import threading
from typing import TYPE_CHECKING

from caracal.core.errors import NotFoundError

if TYPE_CHECKING:
    from docker.models.containers import Container

    from caracal.launcher.stack import Launcher


def show_logs(launcher: Launcher, services: list[str], *, follow: bool, tail: int | None) -> None:
    for name in services:
        if name not in launcher.stack.services:
            raise NotFoundError(
                f"No service {name!r}; the stack has {', '.join(launcher.stack.services)}."
            )
    wanted = services or list(launcher.stack.services)
    containers = [(n, c) for n in wanted if (c := launcher.container(n)) is not None]
    if not containers:
        raise NotFoundError("No container of the stack exists; run `caracal up` first.")
    width = max(len(n) for n, _ in containers)
    if not follow:
        for name, container in containers:
            for line in _lines(container.logs(tail=tail or "all")):
                _print(name, width, line)
        return
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def pump(name: str, container: Container) -> None:
        buffer = b""
        for chunk in container.logs(stream=True, follow=True, tail=tail or "all"):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                lines.put((name, line.decode(errors="replace")))
        lines.put(None)

    for name, container in containers:
        threading.Thread(target=pump, args=(name, container), daemon=True).start()
    open_streams = len(containers)
    while open_streams:
        item = lines.get()
        if item is None:
            open_streams -= 1
            continue
        _print(item[0], width, item[1])


def _lines(raw: bytes) -> list[str]:
    return raw.decode(errors="replace").splitlines()


def _print(name: str, width: int, line: str) -> None:
    sys.stdout.write(f"{name.ljust(width)} | {line}\n")
    sys.stdout.flush()
