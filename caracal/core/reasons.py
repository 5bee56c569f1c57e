"""Stable reason codes. Validation denials are listed in the order they are checked."""

from __future__ import annotations

from typing import Final

ALLOWED: Final = "ALLOWED"

# Validation, in check order.
VALIDATION_DENIALS: Final[dict[str, str]] = {
    "TOKEN_MISSING": "no mandate token was presented",
    "TOKEN_MALFORMED": "the token is not a well-formed mandate",
    "ALGORITHM_UNSUPPORTED": "the token is not signed with ES256",
    "CRITICAL_HEADER_UNSUPPORTED": "the token requires an extension Caracal does not implement",
    "WORKSPACE_MISMATCH": "the mandate belongs to another workspace",
    "KEY_UNKNOWN": "the signing key is not known to this workspace",
    "SIGNATURE_INVALID": "the signature does not verify",
    "MANDATE_UNKNOWN": "no such mandate in this workspace",
    "KEY_REVOKED": "the signing key was revoked",
    "MANDATE_REVOKED": "the mandate was revoked",
    "MANDATE_NOT_YET_VALID": "the mandate is not valid yet",
    "MANDATE_EXPIRED": "the mandate has expired",
    "ISSUER_INACTIVE": "the issuer is suspended or revoked",
    "SUBJECT_INACTIVE": "the subject is suspended or revoked",
    "CALLER_MISMATCH": "the caller is not the mandate's subject",
    "DELEGATION_CHAIN_INVALID": "an ancestor mandate is revoked, expired or inconsistent",
    "ACTION_OUT_OF_SCOPE": "the action is not granted by the mandate",
    "RESOURCE_OUT_OF_SCOPE": "the resource is not granted by the mandate",
    "INTENT_MISMATCH": "the intent does not match the one the mandate is bound to",
    "INTERNAL_ERROR": "validation failed unexpectedly (fail-closed)",
}

# Issuance and delegation refusals.
ISSUANCE_REFUSALS: Final[dict[str, str]] = {
    "ISSUER_INACTIVE": "the issuer is suspended or revoked",
    "SUBJECT_INACTIVE": "the subject is suspended or revoked",
    "DIRECTION_NOT_ALLOWED": "this kind of principal may not grant to that kind",
    "NO_ACTIVE_POLICY": "the subject has no active policy",
    "POLICY_VALIDITY_EXCEEDED": "the requested validity exceeds the policy's maximum",
    "POLICY_RESOURCE_EXCEEDED": "a resource is outside the policy",
    "POLICY_ACTION_EXCEEDED": "an action is outside the policy",
    "POLICY_DEPTH_EXCEEDED": "the delegation depth exceeds the policy's maximum",
    "SOURCE_INVALID": "the source mandate is revoked, not valid yet or otherwise unusable",
    "SOURCE_EXPIRED": "the source mandate has expired (even if within the clock leeway)",
    "DELEGATION_DEPTH_EXHAUSTED": "the source mandate may not be delegated further",
    "SCOPE_NOT_SUBSET": "delegated scopes must be a subset of the source's",
}

# The provider gateway's own refusals, before (or instead of) validating a mandate.
GATEWAY_REFUSALS: Final[dict[str, str]] = {
    "PROVIDER_UNKNOWN": "no provider of that name in this workspace",
    "ACTION_NOT_DECLARED": "no declared action of the provider matches the method and path",
    "PASSTHROUGH_NOT_ENABLED": "the provider has no catalog and is not opened to the gateway",
}
