"""Canonical JSON (sorted keys, no spaces, ASCII, no NaN) and strict parsing.

Strict parsing matters for signed data: Python's `json.loads` silently keeps the last of two
duplicate keys and accepts NaN/Infinity, so a verifier and an attacker could read one claim set
two ways.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from caracal.core.errors import ValidationError


class StrictJSONError(ValueError):
    """The text is not strict JSON (duplicate key, NaN/Infinity, a number out of range, or
    malformed). For a duplicate key, `path` leads to it: the keys (and list positions) from
    the top, the duplicated key last."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


class _Pairs(list[tuple[str, Any]]):
    """An object as its key/value pairs in order (duplicates kept), to find a duplicate."""


def _duplicate_path(text: str | bytes) -> tuple[str | int, ...]:
    def walk(node: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, _value in node:
                if key in seen:
                    return (*path, key)
                seen.add(key)
            children: Any = iter(node)
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            return None
        for key, value in children:
            found = walk(value, (*path, key))
            if found is not None:
                return found
        return None

    try:
        tree = json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, TypeError, RecursionError):
        return ()
    return walk(tree, ()) or ()


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# `json.dumps(..., sort_keys=True, ...)` builds an encoder on every call; this one is built
# once (the same C encoder `json.dumps` uses). Without circular-reference markers: a cycle
# ends in RecursionError rather than ValueError, and nothing read from JSON has one.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ENCODE: Any = (
    _C_ENCODER(
        None,
        _not_serializable,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    if _C_ENCODER is not None
    else None
)


def canonical_json(value: Any) -> str:
    if _ENCODE is not None:
        return "".join(_ENCODE(value, 0))
    return json.dumps(  # pragma: no cover - CPython always has the C encoder
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def canonical_bytes(value: Any) -> bytes:
    return canonical_json(value).encode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJSONError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise StrictJSONError(f"{name} is not allowed")


def finite_float(text: str) -> float:
    """`parse_float` for json.loads: `1e999` would become infinity."""
    value = float(text)
    if math.isinf(value):  # `1e999`: canonical JSON (and so an intent hash) cannot hold it
        raise StrictJSONError(f"{text} is out of range")
    return value


def strict_loads(text: str | bytes) -> Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=finite_float,
        )
    except StrictJSONError as exc:
        if str(exc).startswith("duplicate key"):
            raise StrictJSONError(str(exc), _duplicate_path(text)) from None
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise StrictJSONError(str(exc)) from None


# What a mandate may be bound to: its canonical JSON is hashed into the token and checked on
# every decision, so it stays small.
MAX_INTENT_BYTES = 64 * 1024


def check_intent_size(intent: Any) -> None:
    size = len(canonical_bytes(intent))
    if size > MAX_INTENT_BYTES:
        raise ValidationError(
            f"The intent is {size:,} bytes as canonical JSON, over the {MAX_INTENT_BYTES:,}-byte "
            "limit; bind the mandate to a smaller intent (a digest of a large document, say).",
            hint="intent",
        )


def parse_intent(text: str | None) -> Any:
    """An intent given on the command line: strict JSON, or a clear error."""
    if text is None:
        return None
    if len(text) > 4 * MAX_INTENT_BYTES:  # refused before parsing what cannot fit anyway
        raise ValidationError(
            f"The intent is over {MAX_INTENT_BYTES:,} bytes; bind the mandate to a smaller "
            "intent (a digest of a large document, say).",
            hint="intent",
        )
    try:
        return strict_loads(text)
    except StrictJSONError as exc:
        raise ValidationError(f"The intent must be strict JSON: {exc}.", hint="intent") from None


def intent_hash(intent: Any) -> str:
    return hashlib.sha256(canonical_bytes(intent)).hexdigest()


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_containers(raw: bytes, limit: int) -> int:
    """How many objects and arrays `raw` would parse into, when that may be over `limit`
    (else a cheap upper bound at most `limit`). Parsing costs about 100 bytes per container
    against 2 as text, so a reader checks this before parsing what it did not write. Braces
    inside strings are not counted."""
    rough = raw.count(b"{") + raw.count(b"[")
    if rough <= limit:
        return rough
    bare = _STRING.sub(b"", raw)
    return bare.count(b"{") + bare.count(b"[")
