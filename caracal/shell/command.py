"""`caracal shell`: the typer command. Kept light; the shell itself is imported when it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from caracal.cli.common import workspace_override


def shell(
    ctx: typer.Context,
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            "-c",
            metavar="LINE",
            help="Run this one line through the shell's checks and exit with its code.",
        ),
    ] = None,
) -> None:
    """A restricted shell that runs only Caracal commands (`caracal cli` in the container stack).

    Line editing, history and Tab completion at a terminal; lines from stdin otherwise. Shell
    syntax (pipes, redirections, `;`, `&`, substitutions) is refused, never run."""
    from caracal.shell.repl import start

    raise typer.Exit(start(command, workspace_override(ctx)))
