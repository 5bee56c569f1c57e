"""The workspace ledger key: signs tree heads and backup manifests. Its public half is pinned in the workspace's
`keys/` folder as well as the store, so someone who can only write to the database cannot
swap in a key of their own and re-sign a rewritten history."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, select

from caracal.core.keys import generate_key_pair, load_private, load_public
from caracal.home.atomic import atomic_write_text
from caracal.services.secrets import SecretVault
from caracal.store import raw
from caracal.store.raw import Sql
from caracal.store.schema import ledger_keys

_PIN_PREFIX = "ledger-"
_PIN_SUFFIX = ".pub.pem"


def pin_path(keys_dir: Path, kid: str) -> Path:
    return keys_dir / f"{_PIN_PREFIX}{kid}{_PIN_SUFFIX}"


def pinned_keys(keys_dir: Path) -> dict[str, ec.EllipticCurvePublicKey]:
    out: dict[str, ec.EllipticCurvePublicKey] = {}
    for path in sorted(keys_dir.glob(f"{_PIN_PREFIX}*{_PIN_SUFFIX}")):
        kid = path.name[len(_PIN_PREFIX) : -len(_PIN_SUFFIX)]
        try:
            out[kid] = load_public(path.read_text())
        except Exception:  # noqa: S112 - unreadable or not a P-256 key: not a pin; verify says so
            continue
    return out


def create(
    conn: Connection, vault: SecretVault, keys_dir: Path
) -> tuple[str, ec.EllipticCurvePrivateKey]:
    pair = generate_key_pair()
    ref = f"ledger/signing-key/{pair.kid}"
    vault.put(conn, ref, "ledger-key", pair.private_der)
    conn.execute(
        ledger_keys.insert().values(
            kid=pair.kid, public_pem=pair.public_pem, secret_ref=ref, created_at=time.time()
        )
    )
    # Written before commit: a rolled-back key leaves only an unused pin behind, never a
    # committed key without its pin.
    atomic_write_text(pin_path(keys_dir, pair.kid), pair.public_pem, mode=0o644)
    return pair.kid, load_private(pair.private_der)


def secret_ref(conn: Connection, kid: str) -> str | None:
    row = conn.execute(select(ledger_keys.c.secret_ref).where(ledger_keys.c.kid == kid)).first()
    return str(row.secret_ref) if row else None


# Read in every committing transaction (the head is signed there): fixed SQL, no builder.
_CURRENT = Sql("SELECT kid, secret_ref FROM ledger_keys ORDER BY created_at DESC LIMIT 1")


def current(conn: Connection) -> tuple[str, str] | None:
    """(kid, secret_ref) of the newest ledger key visible in this transaction."""
    row = raw.one(conn, _CURRENT, {})
    return (str(row[0]), str(row[1])) if row else None
