"""`caracal principal ...`: humans, orchestrators, workers and services, and their keys."""

from __future__ import annotations

from typing import Annotated

import typer

from caracal.cli.common import confirm, echo, emit_json, note, open_workspace, table
from caracal.core.durations import when

app = typer.Typer(
    rich_markup_mode=None,
    help="Register principals and manage their keys and status.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
PrincipalArg = Annotated[str, typer.Argument(metavar="P", help="Principal name or id.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@app.command()
def register(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help="human | orchestrator | worker | service")],
    name: Annotated[str, typer.Option("--name", help="Unique name.")],
    email: Annotated[str | None, typer.Option("--email")] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a principal with a fresh ES256 key pair; prints its id."""
    with open_workspace(ctx) as caracal:
        principal = caracal.principals.register(kind, name, email)
    if as_json:
        emit_json(
            {
                "id": principal.id,
                "name": principal.name,
                "kind": principal.kind,
                "status": principal.status,
            }
        )
    else:
        echo(principal.id)
        note(f"Registered {principal.kind} {principal.name}.")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List principals with kind and status."""
    with open_workspace(ctx) as caracal:
        rows = caracal.principals.all()
    if as_json:
        emit_json(rows)
        return
    table(
        ["id", "name", "kind", "status", "email"],
        [[r["id"], r["name"], r["kind"], r["status"], r["email"] or ""] for r in rows],
        empty="No principals yet; register one with `caracal principal register`.",
    )


@app.command()
def show(ctx: typer.Context, principal: PrincipalArg, as_json: JsonOption = False) -> None:
    """Show a principal, its keys and how many mandates it holds."""
    with open_workspace(ctx) as caracal:
        data = caracal.principals.detail(principal)
    if as_json:
        emit_json(data)
        return
    for key in ("id", "name", "kind", "status", "email"):
        echo(f"{key + ':':8} {data[key] or ''}")
    echo(
        f"mandates: {data['mandates']['held_active']} active of {data['mandates']['held_total']} held"
    )
    for key in data["keys"]:
        echo(f"key:     {key['kid']} {key['status']} (created {when(key['created_at'])})")


@app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    principal: PrincipalArg,
    revoke_old: Annotated[
        bool,
        typer.Option(
            "--revoke-old", help="Also revoke the old keys: mandates they signed stop validating."
        ),
    ] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Add a new signing key; old mandates keep verifying unless --revoke-old (asks first)."""
    with open_workspace(ctx) as caracal:
        if revoke_old:
            found = caracal.principals.check_rotation(principal)
            held = caracal.principals.signed_by_keys(principal)
            confirm(
                f"Revoke every key of {found.name} but the new one? The {held} mandate(s) they "
                "signed, and everything delegated from them, stop validating; this cannot be "
                "undone.",
                yes=yes,
            )
        rotation = caracal.principals.rotate_key(principal, revoke_old=revoke_old)
    if as_json:
        emit_json(
            {
                "principal_id": rotation.principal.id,
                "new_kid": rotation.new_kid,
                "old_kids": rotation.old_kids,
                "old_keys_revoked": rotation.revoked_old,
            }
        )
    else:
        state = "revoked" if revoke_old else "retired (still verify)"
        echo(
            f"New key {rotation.new_kid} for {rotation.principal.name}; old keys {state}: {', '.join(rotation.old_kids) or 'none'}"
        )


@app.command()
def suspend(ctx: typer.Context, principal: PrincipalArg, yes: YesOption = False) -> None:
    """Suspend: everything it issued or holds is denied until it is activated again."""
    with open_workspace(ctx) as caracal:
        found = caracal.principals.check_status_change(principal, "suspended")
        confirm(
            f"Suspend {found.kind} {found.name}? Every mandate it issued or holds is denied "
            "until it is activated again.",
            yes=yes,
        )
        updated = caracal.principals.suspend(principal)
    echo(f"{updated.name} is now suspended.")


@app.command()
def activate(ctx: typer.Context, principal: PrincipalArg) -> None:
    """Reactivate a suspended principal."""
    with open_workspace(ctx) as caracal:
        updated = caracal.principals.activate(principal)
    echo(f"{updated.name} is now active.")


@app.command()
def revoke(
    ctx: typer.Context,
    principal: PrincipalArg,
    yes: YesOption = False,
) -> None:
    """Revoke for good: everything it issued or holds is denied."""
    with open_workspace(ctx) as caracal:
        found = caracal.principals.check_status_change(principal, "revoked")
        confirm(
            f"Revoke {found.kind} {found.name}? Every mandate it issued or holds stops validating; "
            "this cannot be undone.",
            yes=yes,
        )
        updated = caracal.principals.revoke(principal)
    echo(f"{updated.name} is now revoked.")
