"""`caracal mandate issue --from FILE`: one mandate per JSON line, outcomes streamed out in
input order. Imported only when a file is given, so `caracal mandate` stays light."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import typer

from caracal.cli import restricted
from caracal.cli.common import echo, json_error, note, open_workspace
from caracal.cli.exit_codes import exit_code_of
from caracal.cli.progress import interruptible, progress, wanted


def _count_lines(path: Path) -> int:
    with open(path, "rb") as data:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: data.read(1 << 20), b""))


def issue_from(ctx: typer.Context, path: Path, as_json: bool) -> None:
    """Bulk issuance: outcomes stream out in input order; exit 0 only if every line issued."""
    issued = failed = 0
    first_error: Any = None
    stdin = str(path) == "-"
    if not stdin:
        path = restricted.input_file(path)
    source: Any = (
        contextlib.nullcontext(sys.stdin) if stdin else open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    )
    # With the ids printed on the same terminal, they are the progress.
    show = wanted(ctx, as_json) and not sys.stdout.isatty()
    total = None if stdin or not show else _count_lines(path)
    with (
        interruptible(
            lambda: (
                f"the {issued} mandate(s) listed were issued before the stop; none was half issued"
            )
        ),
        open_workspace(ctx) as caracal,
        source as lines,
        progress("Issuing mandates", "lines", enabled=show) as shown,
    ):
        for outcome in caracal.mandates.issue_many(lines):
            shown(outcome.line, total)
            if outcome.issued is not None:
                issued += 1
                if not as_json:
                    echo(outcome.issued.id)
            else:
                failed += 1
                first_error = first_error or outcome.error
                if not as_json:
                    note(f"error: {outcome.error}")
            if as_json:
                sys.stdout.write(json.dumps(outcome.to_dict()) + "\n")
    summary = f"issued {issued} mandate(s); {failed} line(s) failed"
    if first_error is None:
        if not as_json:
            note(summary + ".")
        return
    code = exit_code_of(first_error)
    message = f"{summary} (first: {first_error.message})."
    if as_json:
        json_error(code, first_error.kind.value, message)
    else:
        note(message)
    raise typer.Exit(int(code))
