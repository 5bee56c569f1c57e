"""What the restricted shell (`caracal shell`, `caracal cli` in the stack) narrows for the
commands it runs in process: file arguments only inside the host I/O folder, and no store
location (a store URL names a host to connect to, and the shell's user must not pick one).

Commands ask here for every file they read or write and every store URL they are given;
outside the shell these checks let everything through."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from caracal.core.errors import RefusedError
from caracal.home.host_io import HostFolder

_CONFINED: ContextVar[HostFolder | None] = ContextVar("caracal_shell_confinement", default=None)


@contextlib.contextmanager
def confined(root: Path) -> Iterator[None]:
    """Commands run inside this block are confined to `root`."""
    token = _CONFINED.set(HostFolder(root))
    try:
        yield
    finally:
        _CONFINED.reset(token)


def active() -> HostFolder | None:
    return _CONFINED.get()


def input_file(path: Path) -> Path:
    folder = _CONFINED.get()
    return path if folder is None else folder.readable(path)


def output_file(path: Path) -> Path:
    folder = _CONFINED.get()
    return path if folder is None else folder.writable(path)


def no_store_location(option: str, value: object) -> None:
    if value is not None and _CONFINED.get() is not None:
        raise RefusedError(
            f"{option} is not accepted in the Caracal shell: a workspace's store is chosen "
            "where Caracal is installed, not from here."
        )
