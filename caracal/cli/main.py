"""Entry point: the `caracal` command tree and the one error boundary."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from caracal import __version__
from caracal.cli import backup, ledger, mandate, policy, principal, provider, tool, workspace
from caracal.cli import config as config_cmd
from caracal.cli import stack as stack_cmd
from caracal.cli.exit_codes import ExitCode, cli_message, exit_code_of
from caracal.cli.flow import flow
from caracal.cli.serve import serve
from caracal.cli.shell import shell
from caracal.core.errors import CaracalError

app = typer.Typer(
    rich_markup_mode=None,
    name="caracal",
    help=(
        "Caracal gives AI agents authority instead of credentials.\n\n"
        "Start here:  caracal workspace create demo  →  caracal provider add ...  →  "
        "caracal principal register ...  →  caracal policy create ...  →  caracal mandate issue ..."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(workspace.app, name="workspace")
app.add_typer(config_cmd.app, name="config")
app.add_typer(provider.app, name="provider")
app.add_typer(principal.app, name="principal")
app.add_typer(policy.app, name="policy")
app.add_typer(mandate.app, name="mandate")
app.add_typer(ledger.app, name="ledger")
app.add_typer(backup.app, name="backup")
app.add_typer(tool.app, name="tool")
app.command("flow")(flow)
for _name in ("up", "down", "reset", "purge", "logs", "status", "doctor"):
    app.command(_name)(getattr(stack_cmd, _name))
app.command(
    "cli",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
    },
)(stack_cmd.cli)
app.command("serve")(serve)
app.command("shell")(shell)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"caracal {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace_name: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            "-w",
            metavar="NAME",
            help="Act on this workspace instead of the active one (this command only).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    ctx.obj = {"workspace": workspace_name}


def run(argv: list[str] | None = None) -> int:
    """Run one command; usage errors are typer's (exit 2), domain errors map to the enum."""
    for position, arg in enumerate(sys.argv[1:] if argv is None else argv, start=1):
        if not _is_text(arg):
            # Bytes that are not UTF-8 arrive as lone surrogates: no name, id or scope holds
            # them and the store cannot look them up (the shell refuses such lines too).
            typer.echo(f"error: argument {position} is not valid UTF-8 text; retype it.", err=True)
            return int(ExitCode.USAGE)
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="caracal", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CaracalError as exc:
        typer.echo(f"error: {cli_message(exc)}", err=True)
        return int(exit_code_of(exc))
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:
        mapped = _map_adapter_error(exc)
        if mapped is not None:
            typer.echo(f"error: {cli_message(mapped)}", err=True)
            return int(exit_code_of(mapped))
        logging.getLogger("caracal").exception("internal error")
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug; the workspace log "
            "has the details.",
            err=True,
        )
        return int(ExitCode.INTERNAL)
    return 0


def _is_text(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _map_adapter_error(exc: Exception) -> CaracalError | None:
    from caracal.core.errors import RefusedError, UnavailableError, ValidationError

    if isinstance(exc, EOFError):
        # ctrl+d at a prompt: the question went unanswered, so nothing was done.
        return RefusedError("No answer was given; nothing was changed.")

    if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
        # Bytes that are not UTF-8 (on stdin, in an environment variable) arrive as lone
        # surrogates, which nothing downstream can encode.
        return ValidationError("The input holds bytes that are not valid UTF-8 text; retype it.")

    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return UnavailableError(
            f"{exc.strerror}{where}; check the path, permissions and free space."
        )

    module = type(exc).__module__
    if module.startswith(("sqlalchemy", "sqlite3")) and type(exc).__name__ == "OperationalError":
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0:1]
        return UnavailableError(
            f"The workspace store failed: {first[0] if first else exc}; check the database."
        )
    return None
