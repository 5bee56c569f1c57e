"""Validation's view of the store: keys, mandate rows and principal status, read live, each
checked against the ledger events that made it.

Someone who can write the store but not sign could clear a revocation, re-activate a key or a
principal, inject a key or a mandate row. Every row read here is compared with its own events
(found through partial indexes, a few rows each): a row no event made is unknown, a token that
is not the one the event recorded is unknown, and a revocation, key retirement or suspension
the events recorded stands whatever the row says. A disagreement is logged as tampering.

What was checked is kept for the next decisions of the process (`AuthoritySnapshot`) for as
long as the store's authority version stays the same: every change that can turn an allow into
a deny (a revocation, a status change, a key retired or revoked) moves the version in the
transaction that makes it, so a decision that reads the version unchanged may reuse every answer checked at
that version; one that reads another version starts afresh. Absent rows are never kept (a row
added later, such as a new mandate or key, is read when first asked for).
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import Connection

from caracal.core.keys import pem_sha256
from caracal.core.state_replay import ExpectedState, ReplayError
from caracal.core.validation import KeyInfo, MandateState
from caracal.services.life_cache import Checked
from caracal.services.signing import SigningKeys
from caracal.store import mandate_rows, meta, principal_rows

log = logging.getLogger(__name__)
# From least to most restrictive: a row may never be less restrictive than its events.
_KEY_STATUS = {"active": 0, "retired": 1, "revoked": 2}
_PRINCIPAL_STATUS = {"active": 0, "suspended": 1, "revoked": 2}
_WARNED: set[tuple[str, str]] = set()


def _tampered(kind: str, ident: str, detail: str) -> None:
    if (kind, ident) not in _WARNED:
        _WARNED.add((kind, ident))
        log.error(
            "the store's %s row %s disagrees with the ledger (%s): was the store tampered "
            "with? Run `caracal ledger verify`.",
            kind,
            ident,
            detail,
        )


class StoreAuthorityState:
    """Answers from one open connection, or from what the process checked at the authority
    version this connection reads (read once, on the first question)."""

    def __init__(self, conn: Connection, workspace_id: str, keys: SigningKeys) -> None:
        self.conn = conn
        self._workspace_id = workspace_id
        self._keys = keys
        self._checked: Checked | None = None
        self._key_memo: dict[str, KeyInfo | None] = {}
        self._mandate_memo: dict[str, MandateState | None] = {}
        self._status_memo: dict[str, str | None] = {}
        self._lives: dict[str, ExpectedState | None] = {}

    def _shared(self) -> Checked:
        checked = self._checked
        if checked is None:
            version = meta.authority_version(self.conn)
            checked = self._checked = self._keys.snapshot.at(self._workspace_id, version)
        return checked

    @property
    def workspace_id(self) -> str:
        return self._workspace_id

    def _principal_events(self, principal_id: str) -> ExpectedState | None:
        if principal_id not in self._lives:
            try:
                self._lives[principal_id] = self._keys.lives.principal(self.conn, principal_id)
            except ReplayError as exc:
                _tampered("principal", principal_id, str(exc))
                self._lives[principal_id] = None
        return self._lives[principal_id]

    def key(self, kid: str) -> KeyInfo | None:
        shared = self._shared().keys
        found = shared.get(kid)
        if found is None:
            if kid not in self._key_memo:
                self._key_memo[kid] = found = self._checked_key(kid)
                if found is not None:
                    shared[kid] = found
            found = self._key_memo[kid]
        return found

    def _checked_key(self, kid: str) -> KeyInfo | None:
        row = principal_rows.key(self.conn, kid)
        if row is None:
            return None
        principal_id, pem, status = row
        life = self._principal_events(principal_id)
        expected = life.keys.get(kid) if life is not None else None
        if expected is None or expected["principal_id"] != principal_id:
            _tampered("principal_keys", kid, "no event added this key")
            return None
        recorded = expected.get("public_key_sha256")
        if recorded is not None and recorded != pem_sha256(pem):
            _tampered("principal_keys", kid, "its public key is not the one recorded")
            return None
        if _KEY_STATUS.get(expected["status"], 2) > _KEY_STATUS.get(status, 2):
            _tampered("principal_keys", kid, f"the events say {expected['status']}, not {status}")
            status = expected["status"]
        return KeyInfo(kid, principal_id, self._keys.public(kid, pem), status)

    def mandate(self, mandate_id: str) -> MandateState | None:
        shared = self._shared().mandates
        found = shared.get(mandate_id)
        if found is None:
            if mandate_id not in self._mandate_memo:
                self._mandate_memo[mandate_id] = found = self._checked_mandate(mandate_id)
                if found is not None:
                    shared[mandate_id] = found
            found = self._mandate_memo[mandate_id]
        return found

    def _checked_mandate(self, mandate_id: str) -> MandateState | None:
        row = mandate_rows.state(self.conn, mandate_id)
        if row is None:
            return None
        token, revoked = row
        try:
            expected = self._keys.lives.mandate(self.conn, mandate_id).mandates.get(mandate_id)
        except ReplayError as exc:
            _tampered("mandates", mandate_id, str(exc))
            return None
        if expected is None:
            _tampered("mandates", mandate_id, "no event issued this mandate")
            return None
        recorded = expected.get("token_sha256")
        if (
            recorded is not None
            and recorded != hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
        ):
            _tampered("mandates", mandate_id, "its token is not the one issued")
            return None
        if expected["revoked"] and not revoked:
            # Committed together, so only a later revocation can appear between the two reads
            # (READ COMMITTED): read the row again before calling it tampering.
            again = mandate_rows.state(self.conn, mandate_id)
            if again is None or not again[1]:
                _tampered("mandates", mandate_id, "the events revoked it, the row does not say so")
            revoked = True
        return MandateState(mandate_id, token, revoked)

    def principal_status(self, principal_id: str) -> str | None:
        shared = self._shared().statuses
        found = shared.get(principal_id)
        if found is None:
            if principal_id not in self._status_memo:
                self._status_memo[principal_id] = found = self._checked_status(principal_id)
                if found is not None:
                    shared[principal_id] = found
            found = self._status_memo[principal_id]
        return found

    def _checked_status(self, principal_id: str) -> str | None:
        found = principal_rows.get(self.conn, principal_id)
        if found is None:
            return None
        life = self._principal_events(principal_id)
        expected = life.principals.get(principal_id) if life is not None else None
        if expected is None:
            _tampered("principals", principal_id, "no event registered this principal")
            return None
        wanted, status = str(expected["status"]), found.status
        if _PRINCIPAL_STATUS.get(wanted, 2) > _PRINCIPAL_STATUS.get(status, 2):
            # The event of a status change commits with the row; a newer one may show in the
            # second read only: read the row again before calling it tampering.
            again = principal_rows.get(self.conn, principal_id)
            if again is None or again.status == status:
                _tampered("principals", principal_id, f"the events say {wanted}, not {status}")
            return wanted
        return status
