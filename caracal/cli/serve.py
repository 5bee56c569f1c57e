"""`caracal serve`: the runtime service over HTTP (uvicorn)."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

import typer

from caracal.cli.common import workspace_override


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes.")] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
) -> None:
    """Run the runtime service until interrupted: /health, /metrics, POST /v1/authorize and
    the MCP gate at /mcp/SERVER."""
    import uvicorn

    from caracal.server.bootstrap import ensure_stack_workspace

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    served = workspace_override(ctx) or ensure_stack_workspace()
    if served is None:
        from caracal.core.errors import NotFoundError

        raise NotFoundError(
            "No workspace to serve; create one with `caracal workspace create NAME`."
        )
    logging.getLogger("caracal.server").info(
        "Caracal runtime serving workspace %s on http://%s:%d (%d worker(s))",
        served,
        host,
        port,
        workers,
    )
    from caracal.server.front import uvicorn_options

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": access_log,
        **uvicorn_options(),
    }
    if workers == 1:
        from caracal.server.app import create_app

        uvicorn.run(create_app(served), **options)
        return
    from caracal.server.metrics_share import shared_folder

    os.environ["CARACAL_SERVE_WORKSPACE"] = served
    # Every worker's figures, so that /metrics answers for the whole service.
    with shared_folder(workers):
        uvicorn.run(
            "caracal.server.app:app_from_env",
            factory=True,
            workers=workers,
            **options,
        )
