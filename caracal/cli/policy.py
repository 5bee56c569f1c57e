"""`caracal policy ...`: upper bounds on what a principal may be granted."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from caracal.cli.common import ask, confirm, echo, emit_json, note, open_workspace, table
from caracal.core.durations import format_duration, when

app = typer.Typer(
    rich_markup_mode=None, help="Bound what each principal may be granted.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


@app.command()
def create(
    ctx: typer.Context,
    principal: Annotated[str, typer.Option("--principal", metavar="P", help="Name or id.")],
    max_validity: Annotated[str, typer.Option("--max-validity", help="e.g. 90s, 30m, 1h, 7d")],
    resource: Annotated[
        list[str],
        typer.Option("--resource", metavar="PATTERN", help="Resource scope pattern (repeatable)."),
    ],
    action: Annotated[
        list[str],
        typer.Option("--action", metavar="PATTERN", help="Action scope pattern (repeatable)."),
    ],
    delegation_depth: Annotated[
        int, typer.Option("--delegation-depth", help="Maximum delegation depth.")
    ] = 0,
    replace: Annotated[
        bool, typer.Option("--replace", help="Supersede the principal's active policy.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create the principal's active policy; patterns may use * within a segment."""
    with open_workspace(ctx) as caracal:
        policy = caracal.policies.create(
            principal, max_validity, resource, action, delegation_depth, replace=replace
        )
        data = caracal.policies.get(policy.id)
    if as_json:
        emit_json(data)
    else:
        echo(policy.id)


@app.command("list")
def list_(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option("--principal", metavar="P")] = None,
    as_json: JsonOption = False,
) -> None:
    """List policies (active and inactive)."""
    with open_workspace(ctx) as caracal:
        rows = caracal.policies.all(principal)
    if as_json:
        emit_json(rows)
        return
    table(
        ["id", "principal", "status", "max validity", "depth", "resources", "actions"],
        [
            [
                r["id"],
                r["principal_id"],
                r["status"],
                format_duration(r["max_validity"]),
                r["delegation_depth"],
                ",".join(r["resources"]),
                ",".join(r["actions"]),
            ]
            for r in rows
        ],
        empty="No policies yet; create one with `caracal policy create`.",
    )


def _print(data: dict[str, Any]) -> None:
    echo(f"id:           {data['id']}")
    echo(f"principal:    {data['principal_id']}")
    echo(f"status:       {data['status']}")
    echo(f"max validity: {format_duration(data['max_validity'])}")
    echo(f"depth:        {data['delegation_depth']}")
    echo(f"created:      {when(data['created_at'])}")
    for pattern in data["resources"]:
        echo(f"resource:     {pattern}")
    for pattern in data["actions"]:
        echo(f"action:       {pattern}")


@app.command()
def show(
    ctx: typer.Context,
    policy_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOption = False,
) -> None:
    """Show one policy."""
    with open_workspace(ctx) as caracal:
        data = caracal.policies.get(policy_id)
    if as_json:
        emit_json(data)
    else:
        _print(data)


@app.command()
def deactivate(
    ctx: typer.Context,
    policy_id: Annotated[str, typer.Argument(metavar="ID")],
    revoke_mandates: Annotated[
        bool,
        typer.Option(
            "--revoke-mandates",
            help="Also revoke every mandate the principal holds that is still valid (and "
            "everything delegated from them).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Deactivate a policy: nothing more can be issued or delegated to its principal until it
    has a new one. Mandates it holds stay valid unless --revoke-mandates."""
    with open_workspace(ctx) as caracal:
        impact = caracal.policies.deactivation_impact(policy_id)
        who = impact.principal.name
        if not impact.policy.active:
            # Let the facade give the one answer for this (a conflict).
            caracal.policies.deactivate(policy_id)
        held = len(impact.live_mandates)
        if impact.needs_warning:
            note(
                f"warning: {who} holds {held} mandate(s) that stay valid after this, until "
                "they expire or are revoked; nothing more can be issued or delegated to "
                f"{who} without a new policy."
            )
        confirm(f"Deactivate policy {policy_id} of {who}?", yes=yes)
        if impact.needs_warning and not revoke_mandates and not yes:
            revoke_mandates = ask(
                f"Also revoke the {held} mandate(s) {who} holds (and everything delegated "
                "from them)?"
            )
        result = caracal.policies.deactivate(policy_id, revoke_mandates=revoke_mandates)
    if as_json:
        emit_json({"policy_id": policy_id, "revoked": result.revoked})
        return
    echo(f"Policy {policy_id} deactivated.")
    if result.revoked:
        echo(f"Revoked {len(result.revoked)} mandate(s).")
    elif impact.needs_warning:
        note(
            f"The {held} mandate(s) {who} holds stay valid; revoke them with `caracal mandate revoke`."
        )
