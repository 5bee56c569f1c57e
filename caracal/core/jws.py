"""Compact JWS (RFC 7515) with ES256 only, parsed strictly.

A token is `b64url(header).b64url(claims).b64url(r||s)`. Parsing refuses anything a lenient
parser might read differently from us: duplicate JSON keys, NaN, unknown critical headers,
algorithms other than ES256, non-canonical base64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core.canonical import StrictJSONError, canonical_bytes, strict_loads
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


def encode(claims: dict[str, Any], kid: str, private: ec.EllipticCurvePrivateKey) -> str:
    header = {"alg": ALGORITHM, "kid": kid, "typ": TOKEN_TYPE}
    signing_input = b64url(canonical_bytes(header)) + "." + b64url(canonical_bytes(claims))
    return signing_input + "." + b64url(sign(private, signing_input.encode("ascii")))


def decode(token: str) -> ParsedToken:
    """Parse without verifying the signature; raise TokenError with a reason code."""
    if not isinstance(token, str) or not token:
        raise TokenError("TOKEN_MALFORMED", "the token is empty")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("TOKEN_MALFORMED", "the token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("TOKEN_MALFORMED", "a token has three dot-separated parts")
    try:
        header_raw = b64url_decode(parts[0])
        claims_raw = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeError):
        raise TokenError("TOKEN_MALFORMED", "a token part is not canonical base64url") from None
    try:
        header = strict_loads(header_raw)
        claims = strict_loads(claims_raw)
    except StrictJSONError as exc:
        raise TokenError("TOKEN_MALFORMED", f"token JSON rejected: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("TOKEN_MALFORMED", "token header and claims must be JSON objects")
    if header.get("alg") != ALGORITHM:
        raise TokenError("ALGORITHM_UNSUPPORTED", f"algorithm {header.get('alg')!r} is not ES256")
    if "crit" in header:
        raise TokenError(
            "CRITICAL_HEADER_UNSUPPORTED", f"critical header extensions {header['crit']!r}"
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
    return ParsedToken(header, claims, (parts[0] + "." + parts[1]).encode("ascii"), signature)
