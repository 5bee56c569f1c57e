"""The replayed lives of principals and mandates, kept across decisions.

Validation checks every row it reads against the events that made it (`authority_state`).
Replaying an entity's events costs a query for their payloads, JSON decoding and the replay on
every decision; the events of a life only ever grow, so a replay stays right for as long as
the newest event of that life is the one it ended with. Checking that is one index lookup
(`ledger_state_events`, the same rows the replay reads): reuse it then, replay again
otherwise. The rows themselves are read and compared again whenever the authority version
moved (`AuthoritySnapshot`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from caracal.core.ledger import Row
from caracal.core.state_replay import ExpectedState, replay
from caracal.core.validation import KeyInfo, MandateState
from caracal.store import ledger_rows

_Life = Callable[[Connection, str], list[Row]]
_Tip = Callable[[Connection, str], int | None]


class LifeCache:
    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._lives: dict[tuple[str, str], tuple[int, ExpectedState]] = {}
        self._lock = threading.Lock()

    def principal(self, conn: Connection, principal_id: str) -> ExpectedState:
        """The principal's expected state from its events (ReplayError when they do not add
        up, which is never cached)."""
        return self._get(
            conn, "p", principal_id, ledger_rows.principal_tip, ledger_rows.principal_life
        )

    def mandate(self, conn: Connection, mandate_id: str) -> ExpectedState:
        return self._get(conn, "m", mandate_id, ledger_rows.mandate_tip, ledger_rows.mandate_life)

    def _get(
        self, conn: Connection, kind: str, ident: str, tip: _Tip, life: _Life
    ) -> ExpectedState:
        newest = tip(conn, ident)
        if newest is None:
            return replay([])
        key = (kind, ident)
        found = self._lives.get(key)
        if found is not None and found[0] == newest:
            return found[1]
        rows = life(conn, ident)
        state = replay(rows)
        last = rows[-1][0] if rows else None
        if last == newest:  # the rows read are the life the tip named (not a newer one)
            with self._lock:
                if len(self._lives) >= self._size:
                    self._lives.clear()
                self._lives[key] = (newest, state)
        return state

    def forget(self) -> None:
        with self._lock:
            self._lives.clear()


@dataclass
class Checked:
    """The answers checked at one authority version of one workspace."""

    version: tuple[str, str]
    keys: dict[str, KeyInfo] = field(default_factory=dict)
    mandates: dict[str, MandateState] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)

    def size(self) -> int:
        return len(self.keys) + len(self.mandates) + len(self.statuses)


class AuthoritySnapshot:
    """Checked answers shared by the decisions of one process, by authority version. A
    decision takes the answers of the version it read once; another version replaces them
    whole, so answers of two versions never mix (a decision still holding replaced ones only
    adds to what nobody reads any more)."""

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._current = Checked(("", ""))

    def at(self, workspace_id: str, version: str) -> Checked:
        current = self._current
        if current.version != (workspace_id, version) or current.size() >= self._size:
            current = self._current = Checked((workspace_id, version))
        return current

    def forget(self) -> None:
        self._current = Checked(("", ""))
