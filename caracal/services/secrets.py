"""The workspace vault: seal secrets with the master key, keep only ciphertext in the store."""

from __future__ import annotations

from sqlalchemy import Connection

from caracal.core.errors import IntegrityError
from caracal.store import secret_rows
from caracal.vault.cipher import SecretCipher


class SecretVault:
    def __init__(self, cipher: SecretCipher) -> None:
        self.cipher = cipher

    def put(
        self,
        conn: Connection,
        ref: str,
        kind: str,
        plaintext: bytes,
        *,
        created_at: float | None = None,
    ) -> None:
        secret_rows.put(conn, ref, kind, self.cipher.seal(plaintext, ref), created_at)

    def get(self, conn: Connection, ref: str) -> bytes:
        blob = secret_rows.get(conn, ref)
        if blob is None:
            raise IntegrityError(f"Secret {ref!r} is missing from the vault.")
        return self.cipher.open(blob, ref)

    def remove(self, conn: Connection, ref: str) -> None:
        secret_rows.remove(conn, ref)
