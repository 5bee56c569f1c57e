"""Long operations at a real terminal: a workspace big enough to take a few seconds, and a
command run in tmux whose progress display is watched frame by frame."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.tmux import Terminal, terminal

ROOT = Path(__file__).resolve().parents[2]
RC = re.compile(r"^rc=(\d+)$", re.MULTILINE)
# A display line: the phase, the bar, then `done/total` (a count or a size) and the rate.
DISPLAY = re.compile(r"^(\S.*?) [━╸╺]+ +([\d.]+(?: [KMG]iB| B)?)/(\S+)")


def build_big_workspace(home: Path, name: str, events: int) -> None:
    """`events` validation events, 10,000 per transaction (the benchmark's way: fast)."""
    code = (
        "from bench.authority import validation_events\n"
        "from caracal.services.facade import Caracal\n"
        "from caracal.services.workspaces import WorkspaceManager\n"
        f"WorkspaceManager().create({name!r})\n"
        f"app = Caracal.open({name!r})\n"
        "events = validation_events(10_000)\n"
        f"for _ in range({events // 10_000}):\n"
        "    app.store.write(lambda conn: app.ledger.record(conn, *events))\n"
        "app.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], env=env_for(home), cwd=ROOT, check=True, timeout=600
    )


def env_for(home: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")},
        "CARACAL_HOME": str(home),
        "CARACAL_KEYRING": "off",
        "TERM": "xterm-256color",
    }


def caracal_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "caracal", *args]


@dataclass
class Watched:
    """What a terminal showed while a command ran: the distinct display lines, in order,
    the last screen, and the exit status."""

    displays: list[str] = field(default_factory=list)
    final: str = ""
    code: int | None = None

    def moved(self) -> int:
        """How many different positions (phase and count) the display showed."""
        return len(set(self.positions()))

    def positions(self) -> list[tuple[str, str]]:
        found = (DISPLAY.search(line) for line in self.displays)
        return [(m.group(1), m.group(2)) for m in found if m and m.group(1) != "Preparing"]


def _display(screen: str) -> str | None:
    for line in screen.splitlines():
        if ("/s" in line or "━" in line) and DISPLAY.search(line.strip()):
            return line.strip()
    return None


def watch(
    home: Path, *args: str, timeout: float = 240.0, interrupt_after: int | None = None
) -> Watched:
    """Run `caracal ARGS` at a 120x30 terminal until it exits; with `interrupt_after`, send
    ctrl+c once the display has moved that many times."""
    return watch_command(home, shlex.join(caracal_argv(*args)), timeout, interrupt_after)


def watch_command(
    home: Path, command: str, timeout: float = 240.0, interrupt_after: int | None = None
) -> Watched:
    """`watch` for a shell command line (to redirect stdout, say)."""
    # bash goes on after a child that handled ctrl+c itself (exit 130), to print its status.
    line = ["bash", "-c", f"cd {shlex.quote(str(ROOT))} && {command}; echo rc=$?"]
    seen = Watched()
    with terminal(line, env_for(home), width=120, height=30) as term:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = term.screen()
            found = RC.search(screen)
            if found:
                seen.final, seen.code = screen, int(found.group(1))
                break
            shown = _display(screen)
            if shown and (not seen.displays or shown != seen.displays[-1]):
                seen.displays.append(shown)
                if interrupt_after is not None and seen.moved() == interrupt_after:
                    _interrupt(term)
                    interrupt_after = None
            time.sleep(0.05)
        else:
            raise AssertionError(f"{command} did not finish; the screen:\n{term.screen()}")
    return seen


def _interrupt(term: Terminal) -> None:
    subprocess.run(term.tmux("send-keys", "-t", term.session, "C-c"), check=True)
