"""`caracal flow`: the full-screen app. `--local` (or inside a container) runs it in this
process on the embedded home; otherwise it attaches to Flow in the container stack."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from caracal.cli.common import workspace_override


def in_container() -> bool:
    return os.environ.get("CARACAL_RUNTIME_IN_CONTAINER") == "1"


def flow(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Run Flow here, without Docker.")] = False,
    workspace: Annotated[
        str | None, typer.Option("--workspace", metavar="NAME", help="Open this workspace.")
    ] = None,
    reset_state: Annotated[
        bool, typer.Option("--reset-state", help="Forget Flow's saved state for the workspace.")
    ] = False,
    compose_file: Annotated[
        Path | None, typer.Option("--compose-file", metavar="FILE", help="The stack file.")
    ] = None,
) -> None:
    """Open Flow, the full-screen operator app (in the container stack unless --local)."""
    workspace = workspace or workspace_override(ctx)
    if local or in_container():
        from caracal.flow.prefetch import run_flow

        run_flow(workspace, reset_state=reset_state)
        return
    from caracal.cli.stack import launcher
    from caracal.launcher.attach import attach_flow

    stack = launcher(compose_file)
    stack.up(["flow"])
    command = ["caracal", "flow"]
    if workspace:
        command += ["--workspace", workspace]
    if reset_state:
        command.append("--reset-state")
    raise typer.Exit(attach_flow(stack, command))
