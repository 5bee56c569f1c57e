"""Identifiers: a short prefix saying what it is, then hex."""

from __future__ import annotations

import itertools
import secrets
import time


def new_id(prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def new_sortable_id(prefix: str) -> str:
    """Millisecond time first, then randomness: sorting these ids sorts by creation (newest
    last), which listings rely on when two rows share a second."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


class SequentialIds:
    """Unique, time-ordered ids for one process at a high rate (decision ids): a random
    process tag and a counter instead of a system random call per id."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tag = secrets.token_hex(3)
        self.counter = itertools.count()

    def new(self) -> str:
        return f"{self.prefix}_{int(time.time() * 1000):012x}{self.tag}{next(self.counter) & 0xFFFFFF:06x}"
