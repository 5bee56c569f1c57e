"""Identifiers: a short prefix saying what it is, then hex."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def new_sortable_id(prefix: str) -> str:
    """Millisecond time first, then randomness: sorting these ids sorts by creation (newest
    last), which listings rely on when two rows share a second."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(4)}"
