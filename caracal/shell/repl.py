"""The shell's loops: one `-c` line, lines piped on stdin, or an interactive prompt with line
editing, Tab completion and a private, bounded history file."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from caracal.cli.exit_codes import ExitCode
from caracal.shell.session import Runner, ShellSession

PROMPT = "caracal> "
HISTORY_FILE = "shell_history"
HISTORY_LINES = 1000
BANNER = "Caracal shell: Caracal commands only. Type `help` for the list, `exit` to leave."


def start(line: str | None, workspace: str | None) -> int:
    """Run `caracal shell` and return its exit code (the command confines it first)."""
    from caracal.cli.main import run
    from caracal.shell.tree import load_tree

    base = ["--workspace", workspace] if workspace else []
    tree = load_tree()
    if line is not None:
        return run_one(ShellSession(tree, run, base), line)
    if not sys.stdin.isatty():
        script = sys.stdin
        _tolerate_undecodable(script)
        return run_script(ShellSession(tree, _without_stdin(run), base), script)
    from caracal.home.paths import caracal_home

    return run_interactive(ShellSession(tree, run, base), caracal_home() / HISTORY_FILE)


def run_one(session: ShellSession, line: str) -> int:
    """`caracal shell -c LINE`: the same checks, and that command's exit code."""
    return session.handle(line).status


def run_script(session: ShellSession, lines: Iterable[str]) -> int:
    """Lines from a pipe: no prompt; the exit code is the last command's (`exit` stops early)."""
    status = 0
    for raw in lines:
        line = raw.removesuffix("\n").removesuffix("\r")
        step = session.handle(line)
        if step.finished:
            break
        if step.counted:
            status = step.status
            _report(status)
    return status


def run_interactive(session: ShellSession, history: Path) -> int:
    """The prompt. ctrl-C cancels the line (or the running command); exit, quit, ctrl-D leave."""
    readline = _set_up_readline(session, history)
    typer.echo(BANNER)
    try:
        while True:
            try:
                line = input(PROMPT)
            except EOFError:
                typer.echo()
                return int(ExitCode.OK)
            except KeyboardInterrupt:
                typer.echo()
                continue
            except UnicodeDecodeError:
                typer.echo("error: the line is not valid UTF-8 text; retype it.", err=True)
                continue
            try:
                step = session.handle(line)
            except KeyboardInterrupt:
                typer.echo("Interrupted.", err=True)
                _report(130)
                continue
            if step.finished:
                return int(ExitCode.OK)
            _report(step.status)
    finally:
        if readline is not None:
            save_history(readline, history)


def _report(status: int) -> None:
    if status:
        typer.echo(f"[exit {status}]", err=True)


def _without_stdin(run: Runner) -> Runner:
    """Commands run from a piped script get an empty stdin, so none can swallow the lines
    after it (`config encrypt` reads stdin to its end)."""

    def call(argv: list[str]) -> int:
        saved = sys.stdin
        sys.stdin = io.StringIO()
        try:
            return run(argv)
        finally:
            sys.stdin = saved

    return call


def _tolerate_undecodable(stream: Any) -> None:
    """Bytes that are not UTF-8 become refusable characters instead of ending the loop."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(OSError, ValueError):
            reconfigure(errors="surrogateescape")


def _set_up_readline(session: ShellSession, history: Path) -> Any:
    try:
        import readline
    except ImportError:  # no line editing on this Python; the prompt still works
        return None
    from caracal.shell.completion import Completer

    readline.set_completer(Completer(session.tree, readline))
    readline.set_completer_delims(" \t")
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    readline.set_history_length(HISTORY_LINES)
    with contextlib.suppress(OSError):  # no history yet, or unreadable: start empty
        readline.read_history_file(str(history))
    return readline


def save_history(readline: Any, history: Path) -> None:
    """Write the history (at most HISTORY_LINES lines), readable by its owner only."""
    try:
        history.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(history, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(history, 0o600)
        readline.write_history_file(str(history))
        os.chmod(history, 0o600)
    except OSError:
        pass  # history is a convenience; never fail the exit over it
