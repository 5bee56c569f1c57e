"""Process exit codes (values are stable; docs/reference/commands.md is generated from them)
and how the CLI words the next step of an error whose `hint` names an input."""

from __future__ import annotations

from enum import IntEnum

from caracal.core.errors import CaracalError, ErrorKind


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug: unexpected exception
    USAGE = 2  # bad command-line usage (unknown option, missing argument)
    NOT_FOUND = 3  # a named thing does not exist
    CONFLICT = 4  # already exists, or the state forbids the operation
    INVALID = 5  # input failed validation
    DENIED = 6  # an authorisation decision said no
    INTEGRITY = 7  # ledger or archive verification failed
    UNAVAILABLE = 8  # a dependency (database, provider, Docker) is unreachable or unhealthy
    REFUSED = 9  # confirmation required but not given (or no terminal to ask)
    CONFIG = 10  # configuration file is missing or malformed
    INTERRUPTED = 130  # ctrl+c (SIGINT): stopped, nothing half written (the shells' 128 + 2)


EXIT_CODES: dict[ErrorKind, ExitCode] = {
    ErrorKind.INTERNAL: ExitCode.INTERNAL,
    ErrorKind.NOT_FOUND: ExitCode.NOT_FOUND,
    ErrorKind.CONFLICT: ExitCode.CONFLICT,
    ErrorKind.INVALID: ExitCode.INVALID,
    ErrorKind.DENIED: ExitCode.DENIED,
    ErrorKind.INTEGRITY: ExitCode.INTEGRITY,
    ErrorKind.UNAVAILABLE: ExitCode.UNAVAILABLE,
    ErrorKind.REFUSED: ExitCode.REFUSED,
    ErrorKind.CONFIG: ExitCode.CONFIG,
}

# hint -> how the input is given on the command line.
HINTS: dict[str, str] = {
    "credential": "Pass --credential-env VAR or --credential-stdin.",
    "header_name": "Pass --header-name (e.g. X-Token).",
    "auth": "Set --auth as well.",
    "resource": "Add the resource with --resource first.",
    "action": "Add an action with --action RESOURCE:ACTION.",
    "policy": "Create one with `caracal policy create --principal NAME`.",
    "intent": "Check the --intent value.",
    "force": "Pass --force to replace it.",
    "scopes": "See `caracal provider scopes`.",
    "pairs": "See which actions each resource declares with `caracal provider show NAME`.",
}


def exit_code_of(error: CaracalError) -> ExitCode:
    return EXIT_CODES.get(error.kind, ExitCode.INTERNAL)


def cli_message(error: CaracalError) -> str:
    """The error's message with the command-line form of its next step, if it names one."""
    extra = HINTS.get(error.hint or "")
    return f"{error.message} {extra}" if extra else error.message


# `caracal plan --detailed-exitcode` only: the plan has changes to apply. Outside the enum's
# range so a CI gate can tell "changes pending" from every error.
CHANGES_PENDING = 20
