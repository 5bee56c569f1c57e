"""`caracal mandate ...`: issue, delegate, revoke, validate and inspect mandates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from caracal.cli.common import confirm, echo, emit_json, json_error, note, open_workspace
from caracal.cli.exit_codes import ExitCode
from caracal.core.durations import when
from caracal.core.errors import ValidationError

app = typer.Typer(
    rich_markup_mode=None,
    help="Issue, delegate, revoke, validate and inspect mandates.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
MandateArg = Annotated[str, typer.Argument(metavar="ID", help="Mandate id (or a unique prefix).")]
Resources = Annotated[
    list[str],
    typer.Option("--resource", metavar="SCOPE", help="provider:<p>:resource:<id> (repeatable)"),
]
Actions = Annotated[
    list[str],
    typer.Option("--action", metavar="SCOPE", help="provider:<p>:action:<id> (repeatable)"),
]
MaybeResources = Annotated[
    list[str] | None,
    typer.Option("--resource", metavar="SCOPE", help="provider:<p>:resource:<id> (repeatable)"),
]
MaybeActions = Annotated[
    list[str] | None,
    typer.Option("--action", metavar="SCOPE", help="provider:<p>:action:<id> (repeatable)"),
]
Intent = Annotated[
    str | None, typer.Option("--intent", metavar="JSON", help="Bind the mandate to this intent.")
]


def _intent(text: str | None) -> Any:
    from caracal.core.canonical import parse_intent

    return parse_intent(text)


def _print_issued(issued: Any, as_json: bool) -> None:
    data = issued.to_dict()
    if as_json:
        emit_json(data)
        return
    echo(data["id"])
    capped = " (capped at the source's expiry)" if data["expiry_capped"] else ""
    note(
        f"Valid until {when(data['expires_at'])}{capped}. Token: caracal mandate token {data['id']}"
    )


@app.command()
def issue(
    ctx: typer.Context,
    issuer: Annotated[
        str | None, typer.Option("--issuer", metavar="P", help="Who grants (name or id).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", metavar="P", help="Who receives (name or id).")
    ] = None,
    resource: MaybeResources = None,
    action: MaybeActions = None,
    ttl: Annotated[str | None, typer.Option("--ttl", help="Validity, e.g. 15m, 1h, 7d.")] = None,
    delegation_depth: Annotated[
        int, typer.Option("--delegation-depth", help="How often it may be delegated on.")
    ] = 0,
    intent: Intent = None,
    starts_in: Annotated[
        str | None, typer.Option("--starts-in", help="Become valid after this delay.")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            metavar="FILE",
            help="Issue one mandate per JSON line of FILE ('-' for stdin): issuer, subject, "
            "resources, actions, ttl[, delegation_depth, intent, starts_in]. Each line's "
            "outcome is printed in order; errors name their line.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a signed mandate within the subject's policy (--issuer, --subject, --resource,
    --action and --ttl), or one per line of a file (--from)."""
    given = {
        "--issuer": issuer,
        "--subject": subject,
        "--resource": resource,
        "--action": action,
        "--ttl": ttl,
        "--intent": intent,
        "--starts-in": starts_in,
    }
    if from_file is not None:
        extra = [name for name, value in given.items() if value]
        if extra or delegation_depth:
            raise typer.BadParameter(
                f"{(extra or ['--delegation-depth'])[0]} cannot be combined with it; each line "
                "of the file names its own.",
                param_hint="'--from'",
            )
        from caracal.cli.mandate_bulk import issue_from

        issue_from(ctx, from_file, as_json)
        return
    for name in ("--issuer", "--subject", "--resource", "--action", "--ttl"):
        if not given[name]:
            raise typer.BadParameter(
                "is required (or give --from FILE to issue from a file).", param_hint=f"'{name}'"
            )
    assert issuer and subject and resource and action and ttl
    with open_workspace(ctx) as caracal:
        issued = caracal.mandates.issue(
            issuer,
            subject,
            resource,
            action,
            ttl,
            delegation_depth=delegation_depth,
            intent=_intent(intent),
            starts_in=starts_in,
        )
    _print_issued(issued, as_json)


@app.command()
def delegate(
    ctx: typer.Context,
    source_id: Annotated[
        str, typer.Argument(metavar="SOURCE_ID", help="The mandate to delegate from.")
    ],
    subject: Annotated[
        str, typer.Option("--subject", metavar="P", help="Who receives (name or id).")
    ],
    resource: Resources,
    action: Actions,
    ttl: Annotated[str, typer.Option("--ttl", help="Validity; capped at the source's expiry.")],
    delegation_depth: Annotated[
        int | None, typer.Option("--delegation-depth", help="Default: the source's minus one.")
    ] = None,
    intent: Intent = None,
    as_json: JsonOption = False,
) -> None:
    """Delegate a subset of a mandate to another principal (signed by the source's subject)."""
    with open_workspace(ctx) as caracal:
        issued = caracal.mandates.delegate(
            source_id,
            subject,
            resource,
            action,
            ttl,
            delegation_depth=delegation_depth,
            intent=_intent(intent),
        )
    _print_issued(issued, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    subject: Annotated[str | None, typer.Option("--subject", metavar="P")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only mandates valid now.")] = False,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="active (valid now, by validation's rules) | pending | blocked (a revoked key "
            "or an inactive principal denies it) | expired | revoked",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 200,
    as_json: JsonOption = False,
) -> None:
    """List mandates, newest first."""
    if active and status not in (None, "active"):
        raise ValidationError("Give --active or --status, not both.")
    with open_workspace(ctx) as caracal:
        rows = caracal.mandates.listing(
            subject_ref=subject, status="active" if active else status, limit=limit
        )
        names = {p["id"]: p["name"] for p in caracal.principals.all()}
    if as_json:
        emit_json(rows)
        return
    from caracal.cli.mandate_views import print_listing

    print_listing(rows, names)


@app.command()
def show(ctx: typer.Context, mandate_id: MandateArg, as_json: JsonOption = False) -> None:
    """Show one mandate (its token only with `mandate token`)."""
    with open_workspace(ctx) as caracal:
        row = caracal.mandates.get(mandate_id)
    row.pop("token", None)
    if as_json:
        emit_json(row)
        return
    from caracal.cli.mandate_views import print_mandate

    print_mandate(row)


@app.command()
def token(ctx: typer.Context, mandate_id: MandateArg) -> None:
    """Print the mandate's compact JWS (verifiable offline with the issuer's public key)."""
    with open_workspace(ctx) as caracal:
        row = caracal.mandates.get(mandate_id)
    echo(row["token"])


@app.command()
def graph(ctx: typer.Context, mandate_id: MandateArg, as_json: JsonOption = False) -> None:
    """The delegation tree: ancestors above, every descendant below."""
    with open_workspace(ctx) as caracal:
        data = caracal.mandates.graph(mandate_id)
        names = {p["id"]: p["name"] for p in caracal.principals.all()}
    if as_json:
        emit_json(data)
        return

    from caracal.cli.mandate_views import print_graph

    print_graph(data, names)


@app.command()
def revoke(
    ctx: typer.Context,
    mandate_id: MandateArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the ledger.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Revoke a mandate and every mandate delegated from it."""
    with open_workspace(ctx) as caracal:
        preview = caracal.mandates.preview_revocation(mandate_id)
        pending = [r for r in preview if r["revoked_at"] is None]
        confirm(
            f"Revoke {preview[0]['id']} and {max(len(pending) - 1, 0)} descendant mandate(s)?",
            yes=yes,
        )
        result = caracal.mandates.revoke(mandate_id, reason)
    if as_json:
        emit_json(result.to_dict())
        return
    echo(f"Revoked {len(result.revoked)} mandate(s).")
    if result.already:
        note(f"{len(result.already)} were already revoked.")


@app.command()
def validate(
    ctx: typer.Context,
    mandate_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Mandate id (or use --token).")
    ] = None,
    token_text: Annotated[
        str | None, typer.Option("--token", metavar="TOKEN", help="The token; '-' reads stdin.")
    ] = None,
    action: Annotated[str, typer.Option("--action", metavar="SCOPE")] = "",
    resource: Annotated[str, typer.Option("--resource", metavar="SCOPE")] = "",
    caller: Annotated[
        str | None, typer.Option("--caller", metavar="P", help="Who presents the mandate.")
    ] = None,
    intent: Intent = None,
    as_json: JsonOption = False,
) -> None:
    """Decide (fail-closed) whether the mandate allows ACTION on RESOURCE; exit 6 when denied."""
    if (mandate_id is None) == (token_text is None):
        raise ValidationError("Give a mandate ID or --token, not both (and not neither).")
    if not action or not resource:
        raise ValidationError("Both --action and --resource are required.")
    if token_text == "-":
        token_text = sys.stdin.read().strip()
    with open_workspace(ctx) as caracal:
        decision = caracal.validation.validate(
            action,
            resource,
            token=token_text,
            mandate_id=mandate_id,
            caller=caller,
            intent=_intent(intent),
        )
    if as_json:
        emit_json(decision.to_dict())
    elif decision.allowed:
        echo(f"allowed ({decision.mandate_id})")
    else:
        echo(f"denied: {decision.reason_code} - {decision.reason}")
    if not decision.allowed:
        if as_json:
            reason = f"denied: {decision.reason_code} - {decision.reason}"
            json_error(ExitCode.DENIED, "denied", reason, code=decision.reason_code)
        raise typer.Exit(int(ExitCode.DENIED))
