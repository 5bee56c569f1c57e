"""`caracal serve`: the runtime service over HTTP (uvicorn)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from caracal.cli.common import workspace_override


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8080,
) -> None:
    """Run the runtime service (GET /health) until interrupted."""
    import uvicorn

    from caracal.server.app import create_app
    from caracal.server.bootstrap import ensure_stack_workspace

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    served = workspace_override(ctx) or ensure_stack_workspace()
    logging.getLogger("caracal.server").info(
        "Caracal runtime serving workspace %s on http://%s:%d", served, host, port
    )
    uvicorn.run(create_app(served), host=host, port=port, log_level="info", access_log=True)
