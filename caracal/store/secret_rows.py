"""Sealed secrets (ciphertext only; the vault seals and opens them)."""

from __future__ import annotations

import time

from sqlalchemy import Connection, delete, select

from caracal.store.schema import secrets


def put(
    conn: Connection, ref: str, kind: str, ciphertext: bytes, created_at: float | None = None
) -> None:
    conn.execute(delete(secrets).where(secrets.c.ref == ref))
    conn.execute(
        secrets.insert().values(
            ref=ref,
            kind=kind,
            ciphertext=ciphertext,
            created_at=time.time() if created_at is None else created_at,
        )
    )


def get(conn: Connection, ref: str) -> bytes | None:
    value = conn.execute(select(secrets.c.ciphertext).where(secrets.c.ref == ref)).scalar()
    return bytes(value) if value is not None else None


def remove(conn: Connection, ref: str) -> None:
    conn.execute(delete(secrets).where(secrets.c.ref == ref))
