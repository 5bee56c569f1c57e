"""The real `caracal shell` at a real terminal (tmux): prompt, a command, Tab, ctrl-C, exit."""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

import pytest

from tests.support.tmux import terminal, tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")


def test_shell_session_in_a_real_terminal(home: Path) -> None:
    env = {"CARACAL_HOME": str(home), "CARACAL_KEYRING": "off", "TERM": "xterm-256color"}
    shell = shlex.join([sys.executable, "-m", "caracal", "shell"])
    # Job control gives the shell its own process group, so ctrl-C reaches it and not the
    # wrappers around it (which would otherwise end the pane with it).
    command = ["bash", "-c", f"set -m; {shell}; echo shell-ended-$?"]
    with terminal(command, env, width=120, height=30) as term:
        term.wait_for("caracal>")
        term.type("workspace create demo")
        term.send("Enter")
        term.wait_for("Created workspace demo")
        term.type("princ")
        term.send("Tab")
        term.wait_for("caracal> principal")
        term.type("list")
        term.send("Enter")
        term.wait_for("No principals yet")
        term.type("principl show x")
        term.send("Enter")
        term.wait_for("Did you mean 'principal'?")
        term.wait_for("[exit 2]")
        term.type("exit; sh")
        term.send("Enter")
        term.wait_for("';' is not allowed")
        term.type("mandate list")
        term.send("C-c")  # cancels the line, the shell stays
        term.type("principal show nobody")
        term.send("Enter")
        term.wait_for("[exit 3]")
        assert "No mandates" not in term.screen()
        term.type("exit")
        term.send("Enter")
        term.wait_for("shell-ended-0")
    history = home / "shell_history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    lines = history.read_text().splitlines()
    assert "workspace create demo" in lines
    assert "principal list" in lines


def test_ctrl_d_at_a_confirmation_is_a_refusal_not_an_internal_error(home: Path) -> None:
    """End of input at a [y/N] question: exit 9 ("refused") and nothing changed; it used to
    be exit 1 with "internal error"."""
    from tests.support.cli import run_cli

    assert run_cli("workspace", "create", "demo").code == 0
    assert run_cli("principal", "register", "--kind", "human", "--name", "alice").code == 0
    env = {"CARACAL_HOME": str(home), "CARACAL_KEYRING": "off", "TERM": "xterm-256color"}
    suspend = shlex.join([sys.executable, "-m", "caracal", "principal", "suspend", "alice"])
    with terminal(["bash", "-c", f'{suspend}; echo "[ended $?]"'], env, height=20) as term:
        term.wait_for("[y/N]")
        term.send("C-d")
        shown = term.wait_for("[ended ")
    assert "[ended 9]" in shown and "internal error" not in shown, shown
    assert run_cli("principal", "show", "alice", "--json").json()["status"] == "active"
