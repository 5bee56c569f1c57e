"""Helpers every command uses: the open workspace, output, confirmation, secret input."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from caracal.core.errors import RefusedError, ValidationError

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


def workspace_override(ctx: typer.Context) -> str | None:
    root = ctx.find_root()
    return (root.obj or {}).get("workspace") if isinstance(root.obj, dict) else None


def no_workspace_option(ctx: typer.Context, why: str) -> None:
    """Refuse `-w NAME` on a command it cannot apply to, rather than ignore it."""
    if workspace_override(ctx) is not None:
        raise typer.BadParameter(f"does not apply here: {why}", param_hint="'-w' / '--workspace'")


def with_workspace_option(ctx: typer.Context, args: list[str]) -> list[str]:
    """A command line for another `caracal` (in the container, or here) that keeps `-w`."""
    name = workspace_override(ctx)
    if name is None:
        return args
    if args and args[0] == "caracal":
        args = args[1:]
    return ["-w", name, *(args or ["shell"])]


@contextmanager
def open_workspace(ctx: typer.Context, *, check_ledger: bool = True) -> Iterator[Caracal]:
    """The workspace of this command. Opening it checks the ledger head against the copies
    kept outside the store (a rolled-back store is refused, exit 7); `check_ledger=False` is
    for the commands that report or accept what that check finds."""
    from caracal.services.facade import Caracal

    app = Caracal.open(workspace_override(ctx), check_ledger=check_ledger)
    try:
        yield app
    finally:
        app.close()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def json_error(exit_code: int, kind: str, message: str, *, code: str | None = None) -> None:
    """With `--json`, an error or a negative verdict is also one object on stderr: `error`
    (the denial's reason code, else the exit code's name), `kind`, `exit_code`, `message`."""
    from caracal.cli.exit_codes import ExitCode

    name = code or ExitCode(exit_code).name
    body = {"error": name, "kind": kind, "exit_code": int(exit_code), "message": message}
    sys.stderr.write(json.dumps(body, ensure_ascii=False) + "\n")


def echo(text: str = "") -> None:
    typer.echo(text)


def note(text: str) -> None:
    """Progress and hints go to stderr so stdout stays clean for pipes."""
    typer.echo(text, err=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "(none)") -> None:
    if not rows:
        echo(empty)
        return
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def confirm(question: str, *, yes: bool) -> None:
    """Proceed only with --yes or an explicit 'y' at a terminal."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError(f"{question} Refusing without a terminal; pass --yes to confirm.")
    if not ask(question):
        raise RefusedError("Cancelled; nothing was changed.")


def ask(question: str, *, default: bool = False) -> bool:
    """A [y/N] question at the terminal. End of input (ctrl+d) or ctrl+c is a refusal (exit
    9), never an internal error."""
    try:
        return bool(typer.confirm(question, default=default))
    except (typer.Abort, EOFError, KeyboardInterrupt):
        typer.echo("", err=True)
        raise RefusedError("No answer was given; nothing was changed.") from None


def read_secret(env_var: str | None, from_stdin: bool, what: str) -> str | None:
    """Secrets come from an environment variable or stdin, never from argv."""
    if env_var and from_stdin:
        raise ValidationError(
            f"Give the {what} through --credential-env or --credential-stdin, not both."
        )
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise ValidationError(f"Environment variable {env_var} is not set or empty.")
        return value
    if from_stdin:
        if sys.stdin.isatty():
            import getpass

            value = getpass.getpass(f"{what.capitalize()}: ")
        else:
            value = sys.stdin.read().rstrip("\r\n")
        if not value:
            raise ValidationError(f"No {what} was read from stdin.")
        return value
    return None


class Interrupted(Exception):
    """ctrl+c during a command that says what the stop left: `caracal` exits 130 with it.
    Not a KeyboardInterrupt, which typer turns into a silent exit 130 on its way out."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


@contextmanager
def interruptible(outcome: str | Callable[[], str] = "nothing was written") -> Iterator[None]:
    """ctrl+c inside the block ends the command with `interrupted: <outcome>.` and exit 130
    (the operation has cleaned up on its way out: it treats ctrl+c like any failure)."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(outcome if isinstance(outcome, str) else outcome()) from None
    except Exception as exc:
        # ctrl+c in the middle of a database call can surface as the driver's failure to clean
        # up after it ("another command is already in progress"): still the operator's stop.
        if not caused_by_ctrl_c(exc):
            raise
        raise Interrupted(outcome if isinstance(outcome, str) else outcome()) from None


def caused_by_ctrl_c(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is among the exceptions that led to `exc`."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        found = pending.pop()
        if found is None or id(found) in seen:
            continue
        if isinstance(found, KeyboardInterrupt):
            return True
        seen.add(id(found))
        pending += [found.__cause__, found.__context__]
    return False
