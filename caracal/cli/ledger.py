"""`caracal ledger ...`: list, verify and export the tamper-evident event ledger."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from caracal.cli.common import echo, emit_json, note, open_workspace, table
from caracal.cli.format import when
from caracal.core.errors import ExitCode, ValidationError

app = typer.Typer(
    rich_markup_mode=None, help="List, verify and export the ledger.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def parse_since(text: str, now: float | None = None) -> int:
    """A duration back from now (`1h`) or an ISO-8601 time; returns epoch microseconds."""
    from caracal.core.durations import parse_duration

    if re.fullmatch(r"\d+[smhdw]?", text.strip()):
        return int(((now or time.time()) - parse_duration(text)) * 1_000_000)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"--since {text!r}: use a duration (1h, 7d) or an ISO time (2026-01-31T12:00Z)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1_000_000)


@app.command("list")
def list_(
    ctx: typer.Context,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", metavar="T", help="Event type, or a prefix ending in '.'."),
    ] = None,
    principal: Annotated[str | None, typer.Option("--principal", metavar="P")] = None,
    mandate: Annotated[str | None, typer.Option("--mandate", metavar="ID")] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="1h, 7d or an ISO time.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason-code", metavar="CODE")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """The most recent events (newest last), filtered."""
    from caracal.services.ledger import LedgerFilter

    with open_workspace(ctx) as caracal:
        principal_id = caracal.principals.get(principal).id if principal else None
        flt = LedgerFilter(
            types=event_type or [],
            principal_id=principal_id,
            mandate_id=mandate,
            since_us=parse_since(since) if since else None,
            reason_code=reason,
        )
        events = list(reversed(caracal.ledger.events(flt, limit=limit)))
    if as_json:
        emit_json(events)
        return
    table(
        ["seq", "time", "type", "reason", "principal", "mandate"],
        [
            [
                e["seq"],
                when(e["ts"] / 1e6),
                e["type"],
                e["reason_code"] or "",
                e["principal_id"] or "",
                e["mandate_id"] or "",
            ]
            for e in events
        ],
        empty="No matching events.",
    )


@app.command()
def verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Recompute the hash chain and checkpoint signatures; exit 7 naming the first broken event."""
    with open_workspace(ctx) as caracal:
        report = caracal.ledger.verify()
    if as_json:
        emit_json(report.to_dict())
    elif report.ok:
        echo(
            f"Ledger intact: {report.events} events, {report.checkpoints} signed checkpoints, head {report.head_hash[:16]}… ({report.seconds:.2f}s)"
        )
    else:
        echo(f"Ledger TAMPERED: {report.problem}")
    if not report.ok:
        raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write (replaced atomically).")
    ],
    fmt: Annotated[str, typer.Option("--format", help="json | csv")] = "json",
) -> None:
    """Export every event (no tokens or secrets are in the ledger)."""
    with open_workspace(ctx) as caracal:
        count = caracal.ledger.export(output, fmt)
    note(f"Exported {count} events to {output}.")


@app.command()
def checkpoint(ctx: typer.Context) -> None:
    """Sign a checkpoint over the events since the last one."""
    with open_workspace(ctx) as caracal:
        made = caracal.ledger.checkpoint()
    if made is None:
        echo("Nothing to seal: the last checkpoint covers the whole ledger.")
    else:
        echo(f"Signed checkpoint over events {made['seq_from']}-{made['seq_to']}.")
