"""Domain errors. Each carries a kind (what went wrong, in general) that a front end turns
into its own answer: the CLI maps kinds to exit codes (`caracal.cli.exit_codes`), the runtime
to HTTP statuses, Flow to a dialog.

Messages here say what happened and what to do in words every front end can show; they never
name a command-line flag. When the next step is "give this input", the error names that input
as a `hint` and the front end adds how it is given there (the CLI: which option)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorKind(StrEnum):
    INTERNAL = "internal"  # a bug: unexpected exception
    NOT_FOUND = "not_found"  # a named thing does not exist
    CONFLICT = "conflict"  # already exists, or the state forbids the operation
    INVALID = "invalid"  # input failed validation
    DENIED = "denied"  # an authority decision said no
    INTEGRITY = "integrity"  # ledger or archive verification failed
    UNAVAILABLE = "unavailable"  # a dependency is unreachable or unhealthy
    REFUSED = "refused"  # confirmation required but not given (or nobody to ask)
    CONFIG = "config"  # configuration file or master key is missing or malformed


class CaracalError(Exception):
    """An expected failure with a one-line message that says what to do next."""

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Names the input the next step is about (e.g. "credential"); see the module docstring.
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class NotFoundError(CaracalError):
    kind = ErrorKind.NOT_FOUND


class ConflictError(CaracalError):
    kind = ErrorKind.CONFLICT


class ValidationError(CaracalError):
    kind = ErrorKind.INVALID


class DeniedError(CaracalError):
    """An operation refused by the authority rules (e.g. issuance over a policy bound)."""

    kind = ErrorKind.DENIED

    def __init__(self, message: str, reason_code: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason_code = reason_code


class IntegrityError(CaracalError):
    kind = ErrorKind.INTEGRITY


class RollbackError(IntegrityError):
    """The store's ledger is behind (or beside) a signed head recorded outside the store: it
    was rolled back or replaced. Nothing may use it until an operator accepts it."""


class UnavailableError(CaracalError):
    kind = ErrorKind.UNAVAILABLE


class RefusedError(CaracalError):
    kind = ErrorKind.REFUSED


class ConfigError(CaracalError):
    kind = ErrorKind.CONFIG
