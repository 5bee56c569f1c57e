"""Compact JWS (RFC 7515) with ES256 only, parsed strictly.

A token is `b64url(header).b64url(claims).b64url(r||s)`. Parsing refuses anything a lenient
parser might read differently from us: duplicate JSON keys, NaN, unknown critical headers,
algorithms other than ES256, non-canonical base64.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core.canonical import canonical_bytes, canonical_json
from caracal.core.keys import b64url, b64url_decode, sign

ALGORITHM = "ES256"
TOKEN_TYPE = "caracal-mandate+jws"
MAX_TOKEN_BYTES = 16 * 1024
_KNOWN_HEADERS = frozenset({"alg", "kid", "typ"})


class TokenError(ValueError):
    """The token cannot be accepted; `code` is the validation reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ParsedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return str(self.header["kid"])


def token_sha256(token: str) -> str:
    """What the ledger records of an issued token (the token itself is a bearer credential and
    never enters the ledger). Signatures are low-S only, so a token has one spelling."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@lru_cache(maxsize=1024)
def _encoded_header(kid: str) -> str:
    return b64url(canonical_bytes({"alg": ALGORITHM, "kid": kid, "typ": TOKEN_TYPE}))


def encode(claims: dict[str, Any], kid: str, private: ec.EllipticCurvePrivateKey) -> str:
    signing_input = _encoded_header(kid) + "." + b64url(canonical_bytes(claims))
    return signing_input + "." + b64url(sign(private, signing_input.encode("ascii")))


# `json.loads` without its wrapper: the decoder's scanner reads one value from a position.
_SCAN: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _canonical_object(raw: bytes) -> dict[str, Any] | None:
    """The object `raw` holds when it is canonical JSON, read the shortest way; None when it
    is anything else, for `_json_object` to read it in full and say what it is. Canonical JSON
    is ASCII without NUL, starts with its value and ends with it: there `json.loads` and the
    scanner from position 0 read the same value."""
    if not raw.isascii() or b"\x00" in raw:
        return None
    text = raw.decode("ascii")
    try:
        value, end = _SCAN(text, 0)
        if end == len(text) and type(value) is dict and canonical_json(value) == text:
            return value
    except (StopIteration, ValueError, TypeError, RecursionError):
        pass
    return None


def decode(token: str) -> ParsedToken:
    """Parse without verifying the signature; raise TokenError with a reason code."""
    if not isinstance(token, str) or not token:
        raise TokenError("TOKEN_MALFORMED", "the token is empty")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("TOKEN_MALFORMED", "the token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("TOKEN_MALFORMED", "a token has three dot-separated parts")
    accepted = _HEADERS.get(parts[0])
    if accepted is None:
        return _decode_in_full(parts)
    # The header was accepted before, byte for byte: only the claims and signature are new.
    try:
        claims_raw = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeError):
        raise TokenError("TOKEN_MALFORMED", "a token part is not canonical base64url") from None
    claims, claims_canonical = _json_object(claims_raw, "claims")
    if not claims_canonical:
        raise TokenError(
            "TOKEN_MALFORMED",
            "token claims is not canonical JSON (duplicate keys, NaN or re-encoded)",
        )
    return ParsedToken(
        dict(accepted), claims, (parts[0] + "." + parts[1]).encode("ascii"), signature
    )


# Header segments that passed every check, with what they parse to. A workspace has a few
# signing keys, so a few distinct headers: caching them skips a third of the strict parsing.
_HEADERS: dict[str, dict[str, Any]] = {}
_HEADERS_MAX = 1024


def _decode_in_full(parts: list[str]) -> ParsedToken:
    try:
        header_raw = b64url_decode(parts[0])
        claims_raw = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeError):
        raise TokenError("TOKEN_MALFORMED", "a token part is not canonical base64url") from None
    header, header_canonical = _json_object(header_raw, "header")
    # Only ever a choice between denial codes: every path below denies a non-canonical header.
    if header.get("alg") != ALGORITHM:
        raise TokenError("ALGORITHM_UNSUPPORTED", f"algorithm {header.get('alg')!r} is not ES256")
    if "crit" in header:
        raise TokenError(
            "CRITICAL_HEADER_UNSUPPORTED", f"critical header extensions {header['crit']!r}"
        )
    claims, claims_canonical = _json_object(claims_raw, "claims")
    if not (header_canonical and claims_canonical):
        part = "header" if not header_canonical else "claims"
        raise TokenError(
            "TOKEN_MALFORMED",
            f"token {part} is not canonical JSON (duplicate keys, NaN or re-encoded)",
        )
    unknown = sorted(set(header) - _KNOWN_HEADERS)
    if unknown:
        raise TokenError(
            "TOKEN_MALFORMED", f"unexpected token header field(s): {', '.join(unknown)}"
        )
    if header.get("typ") != TOKEN_TYPE:
        raise TokenError("TOKEN_MALFORMED", f"token type {header.get('typ')!r} is not a mandate")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise TokenError("TOKEN_MALFORMED", "the token header has no key id")
    # The key id is looked up in the store before any signature is checked: a lone surrogate
    # cannot be encoded for the query, and PostgreSQL refuses NUL in text.
    if not (header["kid"].isascii() and header["kid"].isprintable()):
        raise TokenError("TOKEN_MALFORMED", "the token's key id is not printable ASCII")
    if len(_HEADERS) >= _HEADERS_MAX:
        _HEADERS.clear()
    _HEADERS[parts[0]] = dict(header)
    return ParsedToken(header, claims, (parts[0] + "." + parts[1]).encode("ascii"), signature)


def _json_object(raw: bytes, part: str) -> tuple[dict[str, Any], bool]:
    """Parse one token part; also say whether it is canonical JSON. Mandates are issued in
    canonical JSON, so anything else is refused: re-encoding and comparing rejects duplicate
    keys, NaN, other spellings and key orders in one C-speed step."""
    value = _canonical_object(raw)
    if value is not None:
        return value, True
    # Canonical JSON is ASCII: read it as text directly. Anything else goes through `json`'s
    # own encoding detection (UTF-16/32, BOMs), to be refused the same way as before.
    text = raw.decode("ascii") if raw.isascii() and b"\x00" not in raw else None
    try:
        value = json.loads(raw if text is None else text)
        if not isinstance(value, dict):
            raise TokenError("TOKEN_MALFORMED", f"token {part} must be a JSON object")
        try:
            canonical = text is not None and canonical_json(value) == text
        except ValueError:  # NaN or Infinity
            canonical = False
    except TokenError:
        raise
    except (ValueError, TypeError, RecursionError):
        raise TokenError("TOKEN_MALFORMED", f"token {part} is not valid JSON") from None
    return value, canonical
