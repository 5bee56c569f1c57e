"""`caracal tool ...`: the MCP tools the gate exposes, and the scopes each one needs."""

from __future__ import annotations

from typing import Annotated

import typer

from caracal.cli.common import confirm, echo, emit_json, note, open_workspace, table

app = typer.Typer(
    rich_markup_mode=None,
    help="Register the MCP tools the gate may forward, each under one resource and action scope.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tool's name on the MCP server.")],
    server: Annotated[
        str, typer.Option("--server", metavar="S", help="The MCP provider that serves it.")
    ],
    resource: Annotated[
        str,
        typer.Option("--resource", metavar="SCOPE", help="provider:S:resource:ID a call needs."),
    ],
    action: Annotated[
        str, typer.Option("--action", metavar="SCOPE", help="provider:S:action:ID a call needs.")
    ],
    description: Annotated[
        str | None, typer.Option("--description", metavar="TEXT", help="What the tool does.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Expose an MCP server's tool through the gate, under one resource and action scope."""
    with open_workspace(ctx) as caracal:
        tool = caracal.tools.register(name, server, resource, action, description)
    if as_json:
        emit_json(tool.to_dict())
    else:
        echo(f"Registered tool {tool.name} on {tool.server} ({tool.action} on {tool.resource}).")


@app.command("list")
def list_(
    ctx: typer.Context,
    server: Annotated[
        str | None, typer.Option("--server", metavar="S", help="Only this MCP server's tools.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List registered tools."""
    with open_workspace(ctx) as caracal:
        tools = caracal.tools.all(server)
    if as_json:
        emit_json([t.to_dict() for t in tools])
        return
    table(
        ["name", "server", "resource", "action", "description"],
        [[t.name, t.server, t.resource, t.action, t.description or ""] for t in tools],
        empty="No tools yet; register one with `caracal tool register NAME --server S ...`.",
    )


@app.command()
def remove(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Stop exposing a tool: the gate refuses calls to it from now on."""
    with open_workspace(ctx) as caracal:
        tool = caracal.tools.get(name)
        confirm(f"Remove tool {name!r} of {tool.server!r}?", yes=yes)
        caracal.tools.remove(name)
    note(f"Removed tool {name}.")
