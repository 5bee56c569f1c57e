"""`caracal config ...`: read and change the workspace's config.yaml."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from caracal.cli import restricted
from caracal.cli.common import echo, emit_json, note, open_workspace, table
from caracal.core.errors import ValidationError

app = typer.Typer(
    rich_markup_mode=None, help="Read and change the workspace configuration.", no_args_is_help=True
)

RevealOption = Annotated[
    bool, typer.Option("--reveal", help="Print secret values in clear (careful).")
]


@app.command("list")
def list_(
    ctx: typer.Context,
    reveal: RevealOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Every setting with the value in effect (after ${VAR} expansion; secrets masked) and,
    where config.yaml writes it as a ${VAR} reference or sealed, the template."""
    with open_workspace(ctx) as caracal:
        items = caracal.settings.in_effect(reveal=reveal)
    if as_json:
        emit_json(items)
        return
    rows = [[k, _text(v["value"]), v["template"] or ""] for k, v in items.items()]
    table(["key", "value", "template"], rows)


@app.command()
def get(
    ctx: typer.Context,
    key: str,
    reveal: RevealOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Print the value in effect of one setting or section (secrets masked unless --reveal);
    a template it comes from goes to stderr."""
    with open_workspace(ctx) as caracal:
        caracal.settings.get(key)  # an unknown key fails here, as before
        items = caracal.settings.in_effect(reveal=reveal)
    if key in items:
        value, template = items[key]["value"], items[key]["template"]
        if as_json:
            emit_json(value)
            return
        echo(_text(value))
        if template:
            note(f"(from {template})")
        return
    section = {k: v for k, v in items.items() if k.startswith(key + ".")}
    if as_json:
        emit_json({k: v["value"] for k, v in section.items()})
        return
    table(
        ["key", "value", "template"],
        [[k, _text(v["value"]), v["template"] or ""] for k, v in section.items()],
    )


def _text(value: object) -> str:
    return "null" if value is None else str(value)


@app.command("set")
def set_(
    ctx: typer.Context,
    key: str,
    value: Annotated[str | None, typer.Argument(help="The value; omit with --stdin.")] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the value from stdin (for secrets).")
    ] = False,
) -> None:
    """Change one setting; secret settings are stored encrypted."""
    if (value is None) == (not stdin):
        raise ValidationError("Give the value as an argument or with --stdin, not both.")
    from caracal.services.config_service import MAX_VALUE_BYTES

    # Read no further than the longest value allowed (the service says what is too long).
    text = sys.stdin.read(MAX_VALUE_BYTES + 1).rstrip("\r\n") if stdin else value
    with open_workspace(ctx) as caracal:
        if caracal.settings.locates_store(key):
            restricted.no_store_location(key, text)
        shown = caracal.settings.set_value(key, text or "")
    echo(f"{key} = {shown}")


@app.command()
def encrypt(ctx: typer.Context) -> None:
    """Read a value from stdin and print it as ENC[...] for config.yaml."""
    if sys.stdin.isatty():
        import getpass

        text = getpass.getpass("Value to encrypt: ")
    else:
        text = sys.stdin.read().rstrip("\r\n")
    if not text:
        raise ValidationError("Nothing to encrypt: stdin was empty.")
    with open_workspace(ctx) as caracal:
        echo(caracal.settings.encrypt(text))
