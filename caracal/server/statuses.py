"""The HTTP status of a denial, one rule for `/v1/authorize`, the provider gateway and forward
authentication, after RFC 6750 section 3.1:

- 401 when there is no usable credential: none was presented (no error code), or the token is
  not a mandate this workspace can accept right now (malformed, badly signed, unknown, revoked,
  expired, not yet valid, of a suspended party: `invalid_token`). Another token may succeed.
- 403 when the token is a valid mandate that does not allow this call (`insufficient_scope`):
  the action, resource or intent is outside it, or it was presented by another caller; also a
  call the gateway refuses before any mandate could allow it (no declared action matches).
"""

from __future__ import annotations

from caracal.core.reasons import VALIDATION_DENIALS

# Denials about the mandate as presented to this call, not about the credential itself.
INSUFFICIENT_SCOPE = frozenset(
    {"CALLER_MISMATCH", "ACTION_OUT_OF_SCOPE", "RESOURCE_OUT_OF_SCOPE", "INTENT_MISMATCH"}
)
NO_CREDENTIAL = "TOKEN_MISSING"
# Validation failed unexpectedly: nothing is said about the token (refused, fail-closed).
UNDECIDED = "INTERNAL_ERROR"
REALM = 'Bearer realm="caracal"'


def denial_status(reason_code: str | None) -> int:
    """401 or 403 for a denial's reason code; an unlisted code (a gateway refusal) is 403."""
    if reason_code in VALIDATION_DENIALS and reason_code not in (*INSUFFICIENT_SCOPE, UNDECIDED):
        return 401
    return 403


def challenge(reason_code: str | None) -> list[tuple[bytes, bytes]]:
    """The `WWW-Authenticate` header of a denial with that reason code."""
    if reason_code == NO_CREDENTIAL:
        value = REALM
    elif denial_status(reason_code) == 401:
        value = f'{REALM}, error="invalid_token"'
    elif reason_code in INSUFFICIENT_SCOPE:
        value = f'{REALM}, error="insufficient_scope"'
    else:
        return []
    return [(b"www-authenticate", value.encode())]
