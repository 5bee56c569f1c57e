"""Principal key material: private keys out of the vault (cached per process), public keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection

from caracal.core.errors import ConflictError
from caracal.core.keys import KeyPair, generate_key_pair, load_private, load_public
from caracal.services.life_cache import AuthoritySnapshot, LifeCache
from caracal.store import principal_rows, secret_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


def key_ref(principal_id: str, kid: str) -> str:
    return f"principal/{principal_id}/key/{kid}"


class SigningKeys:
    def __init__(self, app: Caracal) -> None:
        self.app = app
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._public: dict[str, ec.EllipticCurvePublicKey] = {}
        # The replayed event lives that every decision checks the key, principal and mandate
        # rows against (see life_cache): per process, like the keys.
        self.lives = LifeCache()
        # What validation checked, kept while the authority version stays (authority_state).
        self.snapshot = AuthoritySnapshot()

    def create(self, conn: Connection, principal_id: str) -> KeyPair:
        pair = generate_key_pair()
        ref = key_ref(principal_id, pair.kid)
        self.app.vault.put(conn, ref, "principal-key", pair.private_der)
        principal_rows.add_key(conn, principal_id, pair.kid, pair.public_pem, ref)
        return pair

    def signer(
        self,
        conn: Connection,
        principal_id: str,
        name: str,
        active: tuple[str, str] | None = None,
    ) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The principal's current key id and private key. `active` is its (kid, secret_ref)
        when the caller read it in `conn`'s transaction already."""
        found = active if active is not None else principal_rows.active_key(conn, principal_id)
        if found is None:
            raise ConflictError(
                f"{name} has no active signing key; rotate one with `caracal principal rotate-key {name}`."
            )
        kid, ref = found
        private = self._private.get(kid)
        if private is None:
            sealed = secret_rows.get(conn, ref)
            if sealed is None:
                raise ConflictError(
                    f"{name}'s private key is not in this workspace (it was restored from a "
                    f"backup without secrets); give it a new one with "
                    f"`caracal principal rotate-key {name}`."
                )
            private = load_private(self.app.cipher.open(sealed, ref))
            self._private[kid] = private
        return kid, private

    def public(self, kid: str, pem: str) -> ec.EllipticCurvePublicKey:
        key = self._public.get(kid)
        if key is None:
            key = load_public(pem)
            self._public[kid] = key
        return key

    def forget(self, kids: list[str]) -> None:
        for kid in kids:
            self._private.pop(kid, None)
