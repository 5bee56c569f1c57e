"""The `caracal` executable. Kept light: Flow's start-up budget has no room for building the
whole typer command tree first, so `caracal flow` goes straight to the app."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    fast = _fast_flow(args)
    if fast is not None:
        sys.exit(fast)
    from caracal.cli.main import run

    sys.exit(run(args))


def _fast_flow(args: list[str]) -> int | None:
    """`caracal flow --local [--workspace NAME] [--reset-state]` (or `caracal flow` inside a
    container); anything else (the stack, help, other commands) goes through the full parser."""
    import os

    if not args or args[0] != "flow":
        return None
    local = os.environ.get("CARACAL_RUNTIME_IN_CONTAINER") == "1"
    workspace, reset, rest = None, False, list(args[1:])
    while rest:
        option = rest.pop(0)
        if option == "--local":
            local = True
        elif option == "--reset-state":
            reset = True
        elif option in ("--workspace", "-w") and rest:
            workspace = rest.pop(0)
        else:
            return None
    if not local:
        return None  # attaching to the container stack goes through the launcher
    from caracal.flow.prefetch import run_flow

    run_flow(workspace, reset_state=reset)
    return 0
