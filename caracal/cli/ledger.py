"""`caracal ledger ...`: list, verify, prove and export the tamper-evident event ledger."""

from __future__ import annotations

import io
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from caracal.cli import restricted
from caracal.cli.common import echo, emit_json, json_error, note, open_workspace, table
from caracal.cli.exit_codes import ExitCode
from caracal.cli.progress import interruptible, steps, wanted
from caracal.core.durations import when
from caracal.core.errors import NotFoundError, ValidationError

app = typer.Typer(
    rich_markup_mode=None, help="List, verify and export the ledger.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace the file if it exists (atomically).")
]


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
    from caracal.services.ledger_reads import LedgerFilter

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
def verify(
    ctx: typer.Context,
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            metavar="HEAD.json",
            help="Only prove that today's ledger extends a head saved earlier (`ledger head --json`).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check every event, the Merkle tree against the signed head, the copies of the head kept
    outside the store and the authority tables against the events; exit 7 naming the first
    difference."""
    if since is not None:
        _verify_since(ctx, since, as_json)
        return
    with (
        interruptible("the ledger was not fully verified; nothing was written"),
        open_workspace(ctx, check_ledger=False) as caracal,
        steps(enabled=wanted(ctx, as_json)) as shown,
    ):
        report = caracal.ledger.verify(shown)
    if as_json:
        emit_json(report.to_dict())
    elif report.ok:
        head = report.head
        assert head is not None
        echo(
            f"Ledger intact: {report.events} events, root {head.root[:16]}…, signed "
            f"{when(head.ts_us / 1e6)}; {report.state_rows} state rows match the events; "
            f"{report.checkpoints} kept heads ({report.seconds:.2f}s)"
        )
        for copy in report.copies:
            echo(f"  {copy['source']}: {copy['status']}")
    else:
        echo(f"Ledger TAMPERED: {report.problem}")
    if not report.ok:
        if as_json:
            json_error(ExitCode.INTEGRITY, "integrity", f"Ledger TAMPERED: {report.problem}")
        raise typer.Exit(int(ExitCode.INTEGRITY))


def _verify_since(ctx: typer.Context, saved: Path, as_json: bool) -> None:
    saved = restricted.input_file(saved)
    try:
        data = saved.read_bytes()
    except OSError as exc:
        raise NotFoundError(f"Cannot read {saved}: {exc.strerror}.") from None
    with open_workspace(ctx, check_ledger=False) as caracal:
        proof = caracal.ledger.consistency_since(data)
    if as_json:
        emit_json(proof)
        return
    old, new = proof["old_head"], proof["new_head"]
    echo(
        f"Consistent: the ledger of {new['size']} events extends the head of {old['size']} events "
        f"signed {when(old['ts'] / 1e6)} (proof of {len(proof['proof'])} hashes)."
    )


@app.command()
def head(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The signed tree head: size, Merkle root, time, key. Save it (`--json`) to check later
    that the ledger only grew (`ledger verify --since`)."""
    with open_workspace(ctx, check_ledger=False) as caracal:
        doc = caracal.ledger.head_document()
    if as_json:
        emit_json({k: v for k, v in doc.items() if k != "copies"})
        return
    echo(f"Events:    {doc['size']}")
    echo(f"Root:      {doc['root']}")
    echo(f"Signed:    {when(doc['ts'] / 1e6)} by ledger key {doc['kid']}")
    echo(f"Key:       sha256:{doc['key_sha256']}")


@app.command()
def prove(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(metavar="SEQ", min=1, help="The event's sequence number.")],
    as_json: JsonOption = False,
) -> None:
    """An inclusion proof for one event, checkable without the store
    (`python -m caracal.core.proofs --key KEY.pem PROOF.json`)."""
    with open_workspace(ctx) as caracal:
        proof = caracal.ledger.prove(seq)
    if as_json:
        emit_json(proof)
        return
    head_doc = proof["head"]
    echo(
        f"Event {seq} ({proof['event']['type']}) is in the ledger of {head_doc['size']} events "
        f"with root {head_doc['root'][:16]}…: {len(proof['audit_path'])} hashes prove it "
        "(--json prints the proof)."
    )


@app.command("accept-rollback")
def accept_rollback(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Continue from the store's ledger after it was rolled back (it no longer holds events that
    the head file or a witness recorded): records the acceptance in the ledger."""
    from caracal.cli.common import confirm

    with open_workspace(ctx, check_ledger=False) as caracal:
        findings = caracal.ledger.rollback_findings()
        if not findings:
            if as_json:
                emit_json({"accepted": []})
            else:
                echo("Nothing to accept: the store's ledger extends every recorded head.")
            return
        if not as_json:
            for finding in findings:
                note(f"- {finding.describe()}")
        confirm("Accept the store's ledger as it is, and record that you did?", yes=yes)
        accepted, new_head = caracal.ledger.accept_rollback()
    if as_json:
        emit_json(
            {
                "accepted": [f.to_dict() for f in accepted],
                "head": new_head.to_dict() if new_head else None,
            }
        )
        return
    echo(
        f"Rollback accepted and recorded; the ledger continues at event {new_head.size if new_head else '?'}."
    )


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write, or - for standard output.")
    ],
    fmt: Annotated[str, typer.Option("--format", help="json | csv")] = "json",
    force: ForceOption = False,
) -> None:
    """Export every event (no tokens or secrets are in the ledger). A FIFO or device such as
    /dev/null is written directly; a symbolic link is refused."""
    if str(output) == "-":
        binary = getattr(sys.stdout, "buffer", None)
        sink = binary if binary is not None else io.BytesIO()  # stdout captured as text
        with open_workspace(ctx) as caracal:
            sys.stdout.flush()
            count = caracal.ledger.write_export(sink, fmt)
        if binary is None:
            sys.stdout.write(sink.getvalue().decode("utf-8"))
        note(f"Exported {count} events.")
        return
    output = restricted.output_file(output)
    with (
        interruptible(f"nothing was written ({output} was not created or changed)"),
        open_workspace(ctx) as caracal,
        steps(enabled=wanted(ctx, False)) as shown,
    ):
        count = caracal.ledger.export(output, fmt, overwrite=force, progress=shown)
    note(f"Exported {count} events to {output}.")


@app.command()
def checkpoint(ctx: typer.Context) -> None:
    """Keep the current signed head in the ledger's history and send it to every witness now."""
    with open_workspace(ctx) as caracal:
        kept = caracal.ledger.checkpoint()
    if kept is None:
        echo("Nothing new: the current head is already kept.")
    else:
        echo(f"Kept the signed head at event {kept['size']} (root {kept['root'][:16]}…).")
