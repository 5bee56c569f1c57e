"""The dashboard's first figures, read by a forked copy of this process while this one loads
the terminal UI.

A cold start is two halves that each take about as long: the UI library and its first frame,
and the store, crypto and config libraries with the workspace's first reads. In one process
they run one after the other (Python runs one thread at a time); forked before the UI library
is imported, the copy reads the figures on the second core while this process paints.

The copy only reads: it opens the workspace without the ledger-head check and without
migrating it or signing anything, reads the dashboard's figures, hands them back through a
pipe as JSON and exits without closing anything (nothing is flushed or written on
its way out). The real opening still happens here, in a worker, with every check; its
figures replace these a moment later, and any problem it finds is shown as always. It is
only ever a head start: without `fork` (or when threads already run), on any failure in the
copy, or when it is slower than the real opening, Flow opens as it always did.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import threading
from typing import TYPE_CHECKING

from caracal.flow.startup import onboarded, peek

if TYPE_CHECKING:
    from caracal.core.pulse_figures import Pulse

MAX_BYTES = 4 * 1024 * 1024  # the figures are a few KB; anything larger is not them


class Prefetch:
    """The forked reader: `result()` waits for its figures (None when it has none)."""

    def __init__(self, pid: int, fd: int, workspace: str) -> None:
        self.pid = pid
        self.workspace = workspace
        self._fd: int | None = fd
        self._lock = threading.Lock()

    def result(self, timeout: float = 10.0) -> Pulse | None:
        """The figures, once; None after a failure, a timeout or a second call."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is None:
            return None
        try:
            data = _read_all(fd, timeout)
        except OSError:
            data = b""
        finally:
            os.close(fd)
            self._reap()
        if not data:
            return None
        from caracal.core.pulse_figures import from_plain

        try:
            found = from_plain(json.loads(data))
        except (TypeError, ValueError, KeyError):
            return None
        return found if found.workspace == self.workspace else None

    def cancel(self) -> None:
        """Stop the copy if it still runs (Flow quit first) and let it go."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._reap()

    def _reap(self) -> None:
        try:
            if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass


def run_flow(workspace: str | None = None, *, reset_state: bool = False) -> None:
    """Flow in this terminal, its dashboard's first figures read alongside (the fork happens
    here, before the UI library is imported)."""
    prefetch = start(workspace)
    from caracal.flow.app import run

    run(workspace, reset_state=reset_state, prefetch=prefetch)


def start(requested: str | None) -> Prefetch | None:
    """Fork the reader for the workspace Flow will open on its dashboard; None when Flow will
    show something else first (onboarding) or cannot fork safely here."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return None  # fork is only safe with one thread (and is not what macOS expects)
    if os.environ.get("CARACAL_FLOW_PREFETCH", "1") == "0":
        return None
    name, state = peek(requested)
    if name is None or not onboarded(state):
        return None
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the copy
        status = 1
        try:
            os.close(read_fd)
            _read_figures(name, write_fd)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no flushing of anything inherited
    os.close(write_fd)
    return Prefetch(pid, read_fd, name)


def _read_figures(name: str, fd: int) -> None:
    # Nothing from the copy may reach the terminal Flow is about to take over.
    quiet = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(quiet, target)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        from caracal.core.pulse_figures import to_plain
        from caracal.services.facade import Caracal
        from caracal.services.workspaces import WorkspaceManager

        manager = WorkspaceManager()
        app = Caracal(manager, name, actor="flow:prefetch", check_ledger=False, migrate=False)
        if not app.store_is_current():
            return  # an upgrade is the real opening's to make
        data = json.dumps(to_plain(app.pulse.pulse())).encode()
    except BaseException:
        return
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_all(fd: int, timeout: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return b""
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BYTES:
            return b""
        chunks.append(chunk)
