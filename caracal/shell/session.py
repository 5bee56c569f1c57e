"""Carry out one line typed at the shell: a built-in, a refusal, or a Caracal command run in
process through the CLI's own error boundary."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import typer

from caracal.cli.exit_codes import ExitCode
from caracal.shell.rules import Blank, Builtin, Invoke, Refusal, interpret, shell_groups
from caracal.shell.tree import CommandNode

Runner = Callable[[list[str]], int]  # `caracal.cli.main.run`: argv in, exit code out

_CLEAR_SCREEN = "\033[H\033[2J"


@dataclass(frozen=True)
class Step:
    """What one line did: its exit code, whether it ended the shell, whether it ran at all."""

    status: int = 0
    finished: bool = False
    counted: bool = True  # False for blank lines and comments, which keep the last status


class ShellSession:
    """Interprets lines against `tree` and runs the allowed ones with `runner`.

    `base_argv` goes before every command (the `--workspace NAME` the shell was started with);
    a `--workspace` typed on the line comes later and wins."""

    def __init__(self, tree: CommandNode, runner: Runner, base_argv: Sequence[str] = ()) -> None:
        self.tree = tree
        self.runner = runner
        self.base_argv = list(base_argv)

    def handle(self, line: str) -> Step:
        action = interpret(line, self.tree)
        if isinstance(action, Blank):
            return Step(counted=False)
        if isinstance(action, Refusal):
            typer.echo(action.message, err=True)
            return Step(int(ExitCode.USAGE))
        if isinstance(action, Builtin):
            return self._builtin(action)
        assert isinstance(action, Invoke)
        return Step(self.runner([*self.base_argv, *action.argv]))

    def _builtin(self, action: Builtin) -> Step:
        if action.name == "exit":
            return Step(finished=True)
        if action.name == "clear":
            if sys.stdout.isatty():
                sys.stdout.write(_CLEAR_SCREEN)
                sys.stdout.flush()
            return Step()
        if action.args:
            return Step(self.runner([*action.args, "--help"]))
        typer.echo(overview(self.tree))
        return Step()


def overview(tree: CommandNode) -> str:
    """What `help` prints: every command group with its one-line help, then the built-ins."""
    groups = shell_groups(tree)
    width = max((len(name) for name in groups), default=0) + 2
    lines = ["Caracal commands (type `help GROUP` for a group's commands):", ""]
    lines += [f"  {name.ljust(width)}{tree.children[name].summary}".rstrip() for name in groups]
    lines += [
        "",
        "Shell: help [GROUP [COMMAND]], clear, exit (or quit, ctrl-D). Tab completes commands",
        "and options; ctrl-C cancels the line. A leading `caracal` is optional.",
    ]
    return "\n".join(lines)
