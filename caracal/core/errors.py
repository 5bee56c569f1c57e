"""Domain errors and the exit-code enum every front end maps them to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README. Values are stable."""

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


class CaracalError(Exception):
    """An expected failure with a one-line message that says what to do next."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFoundError(CaracalError):
    exit_code = ExitCode.NOT_FOUND


class ConflictError(CaracalError):
    exit_code = ExitCode.CONFLICT


class ValidationError(CaracalError):
    exit_code = ExitCode.INVALID


class DeniedError(CaracalError):
    """An operation refused by the authority rules (e.g. issuance over a policy bound)."""

    exit_code = ExitCode.DENIED

    def __init__(self, message: str, reason_code: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class IntegrityError(CaracalError):
    exit_code = ExitCode.INTEGRITY


class RollbackError(IntegrityError):
    """The store's ledger is behind (or beside) a signed head recorded outside the store: it
    was rolled back or replaced. Nothing may use it until an operator accepts it."""


class UnavailableError(CaracalError):
    exit_code = ExitCode.UNAVAILABLE


class RefusedError(CaracalError):
    exit_code = ExitCode.REFUSED


class ConfigError(CaracalError):
    exit_code = ExitCode.CONFIG
