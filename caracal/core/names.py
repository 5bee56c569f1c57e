"""Identifier rules shared by every front end."""

from __future__ import annotations

import re

from caracal.core.errors import ValidationError

WORKSPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RESERVED_WORKSPACE_NAMES = frozenset(
    {"all", "active", "current", "none", "null", "tmp", "con", "nul", "prn", "aux", "lock"}
)

# Provider names, resource ids and action ids become segments of canonical scopes
# (`provider:<p>:resource:<r>`), so they may not contain ':' or '*' or whitespace.
IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
PRINCIPAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
# The prefixes of the ids Caracal makes (principals, mandates, policies, keys, decisions): a
# name that starts like an id could be read as one wherever "a name or an id" is accepted.
RESERVED_NAME_PREFIXES = ("pr_", "mnd_", "pol_", "k_", "dec_")


def check_workspace_name(name: str) -> str:
    if not name:
        raise ValidationError("Workspace name is empty; use lowercase letters, digits, '-' or '_'.")
    if not WORKSPACE_NAME.fullmatch(name):
        raise ValidationError(
            f"Invalid workspace name {name!r}: use 1-64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    if name in RESERVED_WORKSPACE_NAMES:
        raise ValidationError(f"Workspace name {name!r} is reserved; choose another name.")
    return name


def check_identifier(value: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(value or ""):
        raise ValidationError(
            f"Invalid {what} {value!r}: use 1-64 lowercase letters, digits, '.', '-' or '_', "
            "starting with a letter or digit."
        )
    return value


def check_principal_name(value: str) -> str:
    if not PRINCIPAL_NAME.fullmatch(value or ""):
        raise ValidationError(
            f"Invalid principal name {value!r}: use 1-128 letters, digits, '.', '@', '-' or '_', "
            "starting with a letter or digit."
        )
    reserved = next((p for p in RESERVED_NAME_PREFIXES if value.lower().startswith(p)), None)
    if reserved is not None:
        raise ValidationError(
            f"Invalid principal name {value!r}: names starting with {reserved!r} look like "
            "Caracal ids and are reserved; choose another name."
        )
    return value
