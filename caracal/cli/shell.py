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
    from caracal.cli.restricted import confined
    from caracal.home.host_io import host_io_folder
    from caracal.shell.repl import start

    # Every command the shell runs reads and writes files only inside the host I/O folder
    # (relative paths start there), and takes no store location.
    folder = host_io_folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with confined(folder):
        code = start(command, workspace_override(ctx))
    raise typer.Exit(code)
