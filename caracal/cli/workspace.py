"""`caracal workspace ...`: create, list, switch and delete workspaces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from caracal.cli import restricted
from caracal.cli.common import (
    confirm,
    echo,
    emit_json,
    no_workspace_option,
    note,
    table,
    workspace_override,
)

if TYPE_CHECKING:
    from caracal.services.workspaces import WorkspaceManager

app = typer.Typer(
    rich_markup_mode=None, help="Create, list, switch and delete workspaces.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _manager() -> WorkspaceManager:
    from caracal.services.workspaces import WorkspaceManager

    return WorkspaceManager()


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '-' or '_'.")],
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store-url",
            help="PostgreSQL URL (postgresql+psycopg://…) instead of the embedded SQLite store; "
            "defaults to $CARACAL_STORE_URL.",
        ),
    ] = None,
    use: Annotated[bool, typer.Option("--use", help="Make it the active workspace.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a workspace (the first one becomes active)."""
    no_workspace_option(ctx, "name the workspace to create as the argument.")
    restricted.no_store_location("--store-url", store_url)
    info = _manager().create(name, store_url=store_url, activate=True if use else None)
    for notice in info.notices:
        note(f"warning: {notice}")
    if as_json:
        emit_json(info.to_dict())
        return
    echo(f"Created workspace {info.name} ({info.store}) at {info.path}")
    if info.active:
        echo("It is now the active workspace. Next: caracal provider add NAME --base-url URL")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List workspaces; `*` marks the one commands act on (the active one, or `-w NAME`)."""
    manager = _manager()
    infos = manager.list()
    override = workspace_override(ctx)
    selected = manager.resolve(override) if override is not None else None
    if as_json:
        chosen = selected or next((i.name for i in infos if i.active), None)
        emit_json([{**i.to_dict(), "selected": i.name == chosen} for i in infos])
        return
    marked = {i.name for i in infos if (i.name == selected if selected else i.active)}
    table(
        ["", "name", "store", "path"],
        [["*" if i.name in marked else "", i.name, i.store, str(i.path)] for i in infos],
        empty="No workspaces yet; create one with `caracal workspace create NAME`.",
    )


@app.command()
def use(ctx: typer.Context, name: str) -> None:
    """Make NAME the active workspace."""
    no_workspace_option(ctx, "name the workspace to make active as the argument.")
    _manager().use(name)
    echo(f"Active workspace: {name}")


@app.command()
def current(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the workspace commands act on."""
    manager = _manager()
    name = manager.resolve(workspace_override(ctx))
    info = manager.info(name)
    if as_json:
        emit_json(info.to_dict())
    else:
        echo(f"{info.name} ({info.store}) {info.path}")


@app.command()
def delete(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_backup: Annotated[
        bool, typer.Option("--no-backup", help="Do not write a backup first.")
    ] = False,
    lock_key_env: Annotated[
        str | None,
        typer.Option(
            "--lock-key-env",
            metavar="VAR",
            help="Lock the backup with the key in this environment variable (it then keeps "
            "the signing keys and provider credentials).",
        ),
    ] = None,
) -> None:
    """Delete a workspace and its store (not the active one); backs it up first."""
    from caracal.cli.backup import _lock_key_from_env
    from caracal.services.workspaces import UNLOCKED_BACKUP_LOSES

    no_workspace_option(ctx, "name the workspace to delete as the argument.")
    manager = _manager()
    manager.check_deletable(name)  # before asking, so nobody confirms in vain
    lock_key = _lock_key_from_env(lock_key_env) if lock_key_env else None
    if not no_backup and lock_key is None:
        note(UNLOCKED_BACKUP_LOSES + " Use --lock-key-env VAR to lock it.")
    extra = "" if no_backup else " (a backup is written first)"
    confirm(f"Delete workspace {name!r} and everything in it{extra}?", yes=yes)
    archive = manager.delete(name, backup_first=not no_backup, lock_key=lock_key)
    if archive is not None:
        note(f"Backup of {name} written to {archive}")
    note(f"Deleted workspace {name}.")
