"""Drive a real terminal: a program in a detached tmux session, keys in, screen text out.

Every terminal runs on a tmux server of its own (`tmux -L <socket>`), never on the default
socket: an operator's own sessions on the machine (one named `flow`, say) and other test runs
cannot collide with it, and killing the server at the end leaves nothing behind."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


class Terminal:
    # Keys arrive at a person's pace: a burst can land before the app has moved focus.
    PACE = 0.15

    def __init__(self, socket: str, session: str) -> None:
        self.socket = socket
        self.session = session

    def tmux(self, *args: str) -> list[str]:
        """A tmux command line on this terminal's private server."""
        return ["tmux", "-L", self.socket, *args]

    def send(self, *keys: str) -> None:
        """Send tmux key names (Enter, Tab, Escape, C-p, ...), one at a time."""
        for key in keys:
            subprocess.run(self.tmux("send-keys", "-t", self.session, key), check=True)
            time.sleep(self.PACE)

    def type(self, text: str) -> None:
        subprocess.run(self.tmux("send-keys", "-t", self.session, "-l", text), check=True)
        time.sleep(self.PACE)

    def screen(self) -> str:
        result = subprocess.run(
            self.tmux("capture-pane", "-p", "-t", self.session),
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def alive(self) -> bool:
        return (
            subprocess.run(
                self.tmux("has-session", "-t", self.session), capture_output=True
            ).returncode
            == 0
        )


@contextmanager
def terminal(
    command: list[str], env: dict[str, str], width: int = 140, height: int = 42
) -> Iterator[Terminal]:
    tag = uuid.uuid4().hex[:8]
    term = Terminal(f"caracal-test-{tag}", f"caracal-test-{tag}")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    shell_command = f"env {exports} {shlex.join(command)}; sleep 30"
    subprocess.run(
        term.tmux(
            "new-session",
            "-d",
            "-s",
            term.session,
            "-x",
            str(width),
            "-y",
            str(height),
            shell_command,
        ),
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        yield term
    finally:
        subprocess.run(term.tmux("kill-server"), capture_output=True)
