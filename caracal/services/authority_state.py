"""Validation's view of the store: keys, mandate rows and principal status, read live."""

from __future__ import annotations

from sqlalchemy import Connection

from caracal.core.validation import KeyInfo, MandateState
from caracal.services.signing import SigningKeys
from caracal.store import mandate_rows, principal_rows


class StoreAuthorityState:
    """Answers from one open connection; memoises within one decision only."""

    def __init__(self, conn: Connection, workspace_id: str, keys: SigningKeys) -> None:
        self.conn = conn
        self._workspace_id = workspace_id
        self._keys = keys
        self._key_memo: dict[str, KeyInfo | None] = {}
        self._mandate_memo: dict[str, MandateState | None] = {}
        self._status_memo: dict[str, str | None] = {}

    @property
    def workspace_id(self) -> str:
        return self._workspace_id

    def key(self, kid: str) -> KeyInfo | None:
        if kid not in self._key_memo:
            row = principal_rows.key(self.conn, kid)
            self._key_memo[kid] = (
                KeyInfo(kid, row[0], self._keys.public(kid, row[1]), row[2]) if row else None
            )
        return self._key_memo[kid]

    def mandate(self, mandate_id: str) -> MandateState | None:
        if mandate_id not in self._mandate_memo:
            row = mandate_rows.state(self.conn, mandate_id)
            self._mandate_memo[mandate_id] = (
                MandateState(mandate_id, row[0], row[1]) if row else None
            )
        return self._mandate_memo[mandate_id]

    def principal_status(self, principal_id: str) -> str | None:
        if principal_id not in self._status_memo:
            found = principal_rows.get(self.conn, principal_id)
            self._status_memo[principal_id] = found.status if found else None
        return self._status_memo[principal_id]
