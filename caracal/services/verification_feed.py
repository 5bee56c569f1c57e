"""What a verifier outside the runtime needs to check mandates offline and stay fresh: the
public keys that can still verify a mandate (a JWK Set), and the revocations since a point in
the ledger, signed by the workspace ledger key."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from caracal.core.canonical import canonical_bytes
from caracal.core.errors import ValidationError
from caracal.core.keys import b64url, load_public, sign
from caracal.services import ledger_keys
from caracal.store import ledger_rows, principal_rows
from caracal.store.schema import ledger_events

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

FEED_FORMAT = "caracal-revocations/1"
MAX_FEED_EVENTS = 10_000
# The ledger events that take authority away.
_REVOKING = (
    "mandate.revoked",
    "principal.key_rotated",
    "principal.suspended",
    "principal.revoked",
    "principal.activated",
)


def public_jwk(public: ec.EllipticCurvePublicKey, kid: str) -> dict[str, str]:
    """RFC 7517 / 7518: a P-256 public key for ES256 signatures."""
    numbers = public.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    }


def jwks(app: Caracal) -> dict[str, Any]:
    """Every principal key that can still verify a mandate (active, or retired and kept for
    the mandates it signed), with its status and its principal's; revoked keys verify
    nothing and are left out (the revocation feed names them)."""
    with app.store.read() as conn:
        rows = principal_rows.all_keys(conn)
    keys = [
        {
            **public_jwk(load_public(pem), kid),
            "status": status,
            "principal_id": principal_id,
            "principal_status": principal_status,
        }
        for kid, principal_id, pem, status, principal_status in rows
        if status != "revoked"
    ]
    return {"keys": keys}


def revocations(app: Caracal, since: int) -> dict[str, Any]:
    """Revoked mandates, revoked keys and principal status changes recorded after ledger
    sequence `since`, up to the ledger's size now (`until`: the next poll's `since`), signed
    by the workspace ledger key over the canonical JSON of everything but `signature`."""
    if since < 0:
        raise ValidationError("since must be a ledger sequence number, 0 or more.")
    with app.store.read() as conn:
        size, _ = ledger_rows.head(conn)
        query = (
            select(
                ledger_events.c.seq,
                ledger_events.c.type,
                ledger_events.c.mandate_id,
                ledger_events.c.principal_id,
                ledger_events.c.payload,
            )
            .where(ledger_events.c.seq > since, ledger_events.c.seq <= size)
            .where(ledger_events.c.type.in_(_REVOKING))
            .order_by(ledger_events.c.seq)
            .limit(MAX_FEED_EVENTS)
        )
        rows = list(conn.execute(query))
        found = ledger_keys.current(conn)
        if found is None:
            raise ValidationError("This workspace has no ledger key yet.")
        kid = found[0]
        private = app.ledger_heads.private_key(conn, kid)
    mandates: list[str] = []
    keys: list[str] = []
    principals: list[dict[str, Any]] = []
    until = size
    if len(rows) == MAX_FEED_EVENTS:
        until = int(rows[-1][0])  # more follow: the next poll continues from here
    for seq, kind, mandate_id, principal_id, payload in rows:
        data = json.loads(payload) if isinstance(payload, str) else payload
        if kind == "mandate.revoked" and mandate_id:
            mandates.append(str(mandate_id))
        elif kind == "principal.key_rotated":
            if data.get("old_keys_revoked"):
                keys.extend(str(k) for k in data.get("old_kids") or [])
        else:
            principals.append({"id": principal_id, "status": data.get("to"), "seq": int(seq)})
    body: dict[str, Any] = {
        "format": FEED_FORMAT,
        "workspace_id": app.workspace_id,
        "since": since,
        "until": until,
        "revoked_mandates": mandates,
        "revoked_keys": keys,
        "principal_status": principals,
    }
    signature = sign(private, canonical_bytes(body))
    return {
        **body,
        "signature": {
            "alg": "ES256",
            "kid": kid,
            "value": b64url(signature),
            "key": public_jwk(private.public_key(), kid),
        },
    }
