"""`caracal flow --local`: the full-screen app, in this process, on the embedded home."""

from __future__ import annotations

from typing import Annotated

import typer

from caracal.cli.common import workspace_override


def flow(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Run Flow here, without Docker.")] = False,
    workspace: Annotated[
        str | None, typer.Option("--workspace", metavar="NAME", help="Open this workspace.")
    ] = None,
    reset_state: Annotated[
        bool, typer.Option("--reset-state", help="Forget Flow's saved state for the workspace.")
    ] = False,
) -> None:
    """Open Flow, the full-screen operator app."""
    if not local:
        # Without the container stack, Flow runs here; `caracal up` then `caracal flow`
        # attaches to the stack's Flow instead.
        local = True
    from caracal.flow.app import run

    run(workspace or workspace_override(ctx), reset_state=reset_state)
