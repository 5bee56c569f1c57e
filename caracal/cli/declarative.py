"""`caracal export | plan | apply`: a workspace's declarative state as a reviewed file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from caracal.cli import restricted
from caracal.cli.common import confirm, echo, emit_json, note, open_workspace
from caracal.cli.exit_codes import CHANGES_PENDING

if TYPE_CHECKING:
    from caracal.core.state_diff import Plan

FileOption = Annotated[
    Path, typer.Option("--file", "-f", metavar="FILE", help="The workspace state file (YAML).")
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace the output file if it exists (atomically).")
]


def export(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout."),
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the file's JSON Schema instead.")
    ] = False,
    force: ForceOption = False,
) -> None:
    """Export the workspace's providers, principals, policies and tools as YAML (no secrets,
    no keys, no mandates)."""
    if output is not None:
        output = restricted.output_file(output)
    if schema:
        from caracal.core.workspace_state import json_schema

        text = json.dumps(json_schema(), indent=2) + "\n"
    else:
        with open_workspace(ctx) as caracal:
            text = caracal.declarative.export_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    from caracal.home.atomic import atomic_write_text

    atomic_write_text(output, text, mode=0o644, overwrite=force)
    note(f"Wrote {output}.")


def plan(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", metavar="FILE", help="The workspace state file (YAML)."),
    ] = None,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift", help="Plan against the last applied file: shows what changed by hand."
        ),
    ] = False,
    allow_suspend: Annotated[
        bool,
        typer.Option("--allow-suspend", help="Plan as apply --allow-suspend would apply it."),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="PLAN", help="Save the plan for `apply --plan-file`."),
    ] = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help=f"Exit 0 when nothing would change, {CHANGES_PENDING} when changes are "
            "pending (errors keep their usual codes).",
        ),
    ] = False,
    force: ForceOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Show what `caracal apply` would create (+), change (~), or deactivate, suspend or
    remove (-); changes that widen authority are marked."""
    from caracal.core.errors import ValidationError
    from caracal.services.declarative.saved_plan import plan_document, save_plan
    from caracal.services.declarative.source import read_file

    if (file is None) == (not drift):
        raise ValidationError("Give -f FILE, or --drift to plan against the last applied file.")
    if file is not None:
        file = restricted.input_file(file)
    if out is not None:
        out = restricted.output_file(out)
    with open_workspace(ctx) as caracal:
        source = caracal.declarative.last_applied() if drift else read_file(file)  # type: ignore[arg-type]
        report = caracal.declarative.plan(source, allow_suspend=allow_suspend)
        workspace = caracal.name
    if out is not None:
        save_plan(report, workspace, out, overwrite=force)
    if as_json:
        emit_json(plan_document(report, workspace))
    else:
        if drift:
            echo("Changed by hand since the last apply (apply would undo these):")
        _print_plan(report.plan)
        if out is not None:
            note(
                f"Saved the plan to {out}; apply it with `caracal apply -f FILE --plan-file {out}`."
            )
    if detailed_exitcode and not report.plan.empty:
        raise typer.Exit(CHANGES_PENDING)


def apply(
    ctx: typer.Context,
    file: FileOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan-file",
            metavar="PLAN",
            help="Apply only if the file and the workspace are as when PLAN was saved.",
        ),
    ] = None,
    allow_suspend: Annotated[
        bool,
        typer.Option("--allow-suspend", help="Suspend active principals the file leaves out."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Apply the file in one transaction, each change recorded in the ledger. Never deletes a
    principal, never revokes or issues mandates."""
    from caracal.services.declarative.saved_plan import expected_state
    from caracal.services.declarative.service import refuse_blocked
    from caracal.services.declarative.source import read_file

    source = read_file(restricted.input_file(file))
    if plan_file is not None:
        plan_file = restricted.input_file(plan_file)
    with open_workspace(ctx) as caracal:
        if plan_file is not None:
            expected = expected_state(plan_file, caracal.name, source.sha256)
        else:
            report = caracal.declarative.plan(source, allow_suspend=allow_suspend)
            expected = report.state_sha256
            if not as_json and not report.plan.empty:
                _print_plan(report.plan)
            refuse_blocked(report.plan)  # before asking: the answer would not matter
            if not report.plan.empty:
                confirm(f"Apply these changes to workspace {caracal.name}?", yes=yes)
        result = caracal.declarative.apply(
            source, allow_suspend=allow_suspend, expected_state=expected
        )
    if as_json:
        emit_json(
            {
                "file_sha256": result.file_sha256,
                "summary": result.plan.summary(),
                "changes": [c.to_dict() for c in result.plan.changes],
                "notes": list(result.notes),
            }
        )
        return
    if result.plan.empty:
        echo("No changes: the workspace matches the file (recorded as the last applied file).")
    else:
        echo(f"Applied: {result.plan.summary_line()}.")
    for line in result.notes:
        note(line)


def _print_plan(plan: Plan) -> None:
    for problem in plan.problems:
        echo(f"! {problem}")
    if not plan.changes:
        if not plan.problems:
            echo("No changes: the workspace matches the file.")
        return
    for change in plan.changes:
        marks = []
        if change.widens:
            marks.append("widens authority: " + "; ".join(change.widens))
        if change.needs:
            marks.append(f"needs {change.needs}")
        tail = f"  [{' | '.join(marks)}]" if marks else ""
        echo(f"{change.op} {change.verb} {change.kind} {change.name}{tail}")
        for detail in change.details:
            echo(f"    {detail}")
    echo(f"Plan: {plan.summary_line()}.")
