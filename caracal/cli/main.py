"""Entry point: the `caracal` command tree and the one error boundary."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated

import typer

from caracal import __version__
from caracal.cli.common import Interrupted, caused_by_ctrl_c
from caracal.cli.exit_codes import ExitCode, cli_message, exit_code_of
from caracal.core.errors import CaracalError, ErrorKind, RefusedError

HELP = (
    "Caracal gives AI agents authority instead of credentials.\n\n"
    "Start here:  caracal workspace create demo  →  caracal provider add ...  →  "
    "caracal principal register ...  →  caracal policy create ...  →  caracal mandate issue ..."
)
STACK_COMMANDS = ("up", "down", "reset", "purge", "logs", "status", "doctor")
# name -> (module, attribute): groups are typer apps, the others single commands; in help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "flow": ("caracal.cli.flow", "flow"),
    **{name: ("caracal.cli.stack", name) for name in STACK_COMMANDS},
    "cli": ("caracal.cli.stack", "cli"),
    "serve": ("caracal.cli.serve", "serve"),
    "shell": ("caracal.cli.shell", "shell"),
    "workspace": ("caracal.cli.workspace", "app"),
    "config": ("caracal.cli.config", "app"),
    "provider": ("caracal.cli.provider", "app"),
    "principal": ("caracal.cli.principal", "app"),
    "policy": ("caracal.cli.policy", "app"),
    "mandate": ("caracal.cli.mandate", "app"),
    "ledger": ("caracal.cli.ledger", "app"),
    "backup": ("caracal.cli.backup", "app"),
    "tool": ("caracal.cli.tool", "app"),
    "export": ("caracal.cli.declarative", "export"),
    "plan": ("caracal.cli.declarative", "plan"),
    "apply": ("caracal.cli.declarative", "apply"),
}
_PASS_THROUGH = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "allow_interspersed_args": False,
}


def build(only: str | None = None) -> typer.Typer:
    """The command tree, or (for speed) the root with just the command a line names: a
    command's modules are imported only when it runs, or when the whole tree is shown."""
    import importlib

    app = typer.Typer(
        rich_markup_mode=None,
        name="caracal",
        help=HELP,
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name, (module, attribute) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        elif name == "cli":
            app.command(name, context_settings=_PASS_THROUGH)(target)
        else:
            app.command(name)(target)
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole tree, for what walks it (the shell, tests)
        return build()
    raise AttributeError(name)


def _named_command(args: list[str]) -> str | None:
    """The command a line names, when the root options before it are known; otherwise None
    (help, completion, typos: the whole tree answers)."""
    import os

    if any(key.startswith("_CARACAL_COMPLETE") for key in os.environ):
        return None
    rest = iter(args)
    for arg in rest:
        if arg in ("-w", "--workspace"):
            next(rest, None)
        elif arg.startswith("--workspace=") or arg in ("-q", "--quiet"):
            continue
        elif arg.startswith("-"):
            return None
        else:
            return arg if arg in COMMANDS else None
    return None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"caracal {__version__}")
        raise typer.Exit()


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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress displays on stderr.")
    ] = False,
) -> None:
    ctx.obj = {"workspace": workspace_name, "quiet": quiet}
    if workspace_name is not None and ctx.invoked_subcommand in STACK_COMMANDS:
        raise typer.BadParameter(
            f"does not apply to `caracal {ctx.invoked_subcommand}`: the stack serves every "
            "workspace; pass it to the command that acts on one (e.g. `caracal -w NAME cli ...`).",
            param_hint="'-w' / '--workspace'",
        )


def run(argv: list[str] | None = None) -> int:
    """Run one command; usage errors are typer's (exit 2), domain errors map to the enum.
    With `--json` every error is one JSON object on stderr (see `_report`)."""
    args = sys.argv[1:] if argv is None else argv
    as_json = _wants_json(args)
    for position, arg in enumerate(args, start=1):
        if not _is_text(arg):
            # Bytes that are not UTF-8 arrive as lone surrogates: no name, id or scope holds
            # them and the store cannot look them up (the shell refuses such lines too).
            return _report(
                "usage",
                ExitCode.USAGE,
                f"argument {position} is not valid UTF-8 text; retype it.",
                as_json=as_json,
            )
    command = typer.main.get_command(build(_named_command(args)))
    try:
        result = command.main(args=args, prog_name="caracal", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except (KeyboardInterrupt, Interrupted) as exc:
        return _interrupted(exc, as_json)
    except Exception as exc:
        if caused_by_ctrl_c(exc):  # a store call's failure after ctrl+c landed inside it
            return _interrupted(KeyboardInterrupt(), as_json)
        if isinstance(exc, CaracalError):
            return _report_error(exc, as_json)
        parser = _parser_outcome(exc, as_json)
        if parser is not None:
            return parser
        mapped = _map_adapter_error(exc)
        if mapped is not None:
            return _report_error(mapped, as_json)
        logging.getLogger("caracal").exception("internal error")
        return _report(
            ErrorKind.INTERNAL.value,
            ExitCode.INTERNAL,
            f"{type(exc).__name__}: {exc}. This is a bug; the workspace log has the details.",
            as_json,
            prefix="internal error",
        )
    return result if isinstance(result, int) else 0


def _parser_outcome(exc: Exception, as_json: bool) -> int | None:
    """Click's own exceptions (typer vendors click, so they are known by name): usage errors
    are exit 2, help on a bare group is shown as before, ctrl+c is 130 and ctrl+d a refusal."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoArgsIsHelpError" in names:
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    if "ClickException" in names:
        if not as_json:
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        message = exc.format_message()  # type: ignore[attr-defined]
        return _report("usage", int(exc.exit_code), message, as_json=True)  # type: ignore[attr-defined]
    if "Abort" in names:
        if isinstance(exc.__context__, KeyboardInterrupt):
            return _interrupted(exc.__context__, as_json)
        return _report_error(RefusedError("No answer was given; nothing was changed."), as_json)
    return None


def _interrupted(exc: BaseException, as_json: bool) -> int:
    """ctrl+c: exit 130; a command that knows what the stop left says so in one line."""
    if isinstance(exc, Interrupted):
        return _report(
            "interrupted", ExitCode.INTERRUPTED, exc.outcome + ".", as_json, prefix="interrupted"
        )
    return _report(
        "interrupted", ExitCode.INTERRUPTED, "Interrupted; nothing more was done.", as_json
    )


def _wants_json(args: list[str]) -> bool:
    """`--json` anywhere before a `--` (the option is every command's own)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def _report_error(error: CaracalError, as_json: bool) -> int:
    return _report(
        error.kind.value,
        exit_code_of(error),
        cli_message(error),
        as_json,
        code=getattr(error, "reason_code", None),
    )


def _report(
    kind: str,
    exit_code: int,
    message: str,
    as_json: bool,
    *,
    code: str | None = None,
    prefix: str = "error",
) -> int:
    """One line on stderr, or with `--json` one object: `error` is a stable code (the
    reason code of a denial, otherwise the exit code's name), `kind` the error's kind."""
    if as_json:
        name = code or _exit_name(exit_code)
        body = {"error": name, "kind": kind, "exit_code": int(exit_code), "message": message}
        sys.stderr.write(json.dumps(body, ensure_ascii=False) + "\n")
    else:
        typer.echo(f"{prefix}: {message}", err=True)
    return int(exit_code)


def _exit_name(exit_code: int) -> str:
    try:
        return ExitCode(exit_code).name
    except ValueError:
        return "INTERRUPTED" if exit_code == 130 else "ERROR"


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
