"""Identifiers: a short prefix saying what it is, then random hex."""

from __future__ import annotations

import secrets


def new_id(prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"
