"""What issuance reads about its parties, kept while the store's authority version stays.

Issuing reads both principals, the subject's active policy and the issuer's signing key. Every
write to those rows (a principal registered or its status changed, a key added, retired or
revoked, a policy created or deactivated) writes a new authority version in its own
transaction, so rows read after that version was read are still the rows while it stays: a
transaction reads the version first, then takes what was read at that version or reads and
keeps it. Another version replaces everything kept, whole; absent rows are never kept, and
versions never repeat (random), so what a rolled-back transaction kept is never read again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from caracal.core.errors import NotFoundError
from caracal.core.mandates import Policy, Principal
from caracal.services.providers import CATALOG_VERSION
from caracal.store import meta, policy_rows, principal_rows


class _Kept:
    __slots__ = ("found", "version")

    def __init__(self, version: str) -> None:
        self.version = version
        self.found: dict[tuple[str, str], Any] = {}


class Parties:
    """One transaction's view: the versions it read and the rows kept at its authority
    version."""

    __slots__ = ("_kept", "_size", "catalog_version", "conn")

    def __init__(self, conn: Connection, kept: _Kept, catalog_version: str, size: int) -> None:
        self.conn = conn
        self._kept = kept
        self._size = size
        self.catalog_version = catalog_version

    def _get(self, kind: str, key: str, load: Any) -> Any:
        found = self._kept.found.get((kind, key))
        if found is None:
            found = load(self.conn, key)
            if found is not None and len(self._kept.found) < self._size:
                self._kept.found[(kind, key)] = found
        return found

    def principal(self, ref: str) -> Principal:
        """By id, else by name (NotFoundError when neither)."""
        found: Principal | None = self._get("principal", ref, principal_rows.find)
        if found is None:
            raise NotFoundError(f"Principal {ref!r} does not exist; see `caracal principal list`.")
        return found

    def policy(self, principal_id: str) -> Policy | None:
        found: Policy | None = self._get("policy", principal_id, policy_rows.active_for)
        return found

    def active_key(self, principal_id: str) -> tuple[str, str] | None:
        """(kid, secret_ref) of the key the principal signs with now."""
        found: tuple[str, str] | None = self._get("key", principal_id, principal_rows.active_key)
        return found


class IssuanceParties:
    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._kept = _Kept("")

    def read(self, conn: Connection) -> Parties:
        """Read the versions (one statement) and take the rows kept at the authority
        version, or start keeping anew."""
        versions = meta.get_many(conn, (meta.AUTHORITY_VERSION, CATALOG_VERSION))
        authority = versions.get(meta.AUTHORITY_VERSION, "")
        kept = self._kept
        if kept.version != authority or not authority:
            kept = self._kept = _Kept(authority)
        return Parties(conn, kept, versions.get(CATALOG_VERSION) or "0", self._size)

    def forget(self) -> None:
        self._kept = _Kept("")
