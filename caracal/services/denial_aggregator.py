"""Denials nobody can be held to account for, recorded in aggregate, and a per-client limit.

A decision about a token that cannot be tied to a key this workspace knows (no token, a
malformed one, an unknown key, a signature that does not verify) names no mandate and no
principal: one ledger event per such request would let anyone who can reach the runtime grow
the ledger at will. They are counted instead, per reason and client, and each count is one
event per interval (`validation.denials_aggregated`, with the count, the interval and the
client). Decisions about real mandates stay one event each.

Each client (the peer address) also has a budget of such denials (a token bucket); once spent,
its requests are refused with 429 before anything is decided, until the budget refills. Those
refusals are counted the same way (reason `RATE_LIMITED`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from caracal.core.ledger import NewEvent

ANONYMOUS = frozenset({"TOKEN_MISSING", "TOKEN_MALFORMED", "KEY_UNKNOWN", "SIGNATURE_INVALID"})
RATE_LIMITED = "RATE_LIMITED"
EVENT_TYPE = "validation.denials_aggregated"
MAX_CLIENTS = 100_000  # budgets kept at once; the least recently seen go first
_FIELD = 256


@dataclass(frozen=True)
class DenialLimits:
    interval_seconds: float = 10.0  # one event per reason and client at most this often
    per_client_per_second: float = 10.0  # refill rate of a client's budget; 0: no limit
    burst: int = 50  # the budget when full


@dataclass
class _Window:
    decision_id: str
    opened: float  # wall clock
    opened_at: float  # monotonic
    count: int = 0
    last: float = 0.0
    sample: dict[str, str] = field(default_factory=dict)


@dataclass
class _Budget:
    tokens: float
    updated: float


class DenialAggregator:
    """Thread-safe; one per runtime replica."""

    def __init__(
        self,
        limits: DenialLimits,
        new_id: Callable[[], str],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._new_id = new_id
        self._clock = clock
        self._monotonic = monotonic
        self._windows: dict[tuple[str, str], _Window] = {}
        self._budgets: dict[str, _Budget] = {}
        self._lock = threading.Lock()
        self.counted = 0  # anonymous denials counted
        self.limited = 0  # requests refused for the client's budget
        self.recorded = 0  # aggregated events handed to the ledger

    # ---- the budget -----------------------------------------------------------------------
    def _budget(self, client: str, now: float) -> _Budget:
        budget = self._budgets.pop(client, None)  # re-inserted last: most recently seen
        if budget is None:
            if len(self._budgets) >= MAX_CLIENTS:
                self._budgets.pop(next(iter(self._budgets)))
            budget = _Budget(float(self.limits.burst), now)
        rate = self.limits.per_client_per_second
        budget.tokens = min(float(self.limits.burst), budget.tokens + (now - budget.updated) * rate)
        budget.updated = now
        self._budgets[client] = budget
        return budget

    def admit(self, client: str | None) -> float | None:
        """None when `client` may be decided now; else the seconds until it may (its request
        is then counted as RATE_LIMITED)."""
        if self.limits.per_client_per_second <= 0:
            return None
        key = client or "unknown"
        with self._lock:
            budget = self._budget(key, self._monotonic())
            if budget.tokens >= 1.0:
                return None
            wait = (1.0 - budget.tokens) / self.limits.per_client_per_second
        self.count(RATE_LIMITED, client, {})
        with self._lock:
            self.limited += 1
        return max(wait, 0.001)

    # ---- counting -------------------------------------------------------------------------
    def count(self, reason_code: str, client: str | None, sample: dict[str, Any]) -> str:
        """Count one denial; returns the id of the aggregated decision it belongs to."""
        who = (client or "unknown")[:_FIELD]
        key = (reason_code, who)
        now, mono = self._clock(), self._monotonic()
        with self._lock:
            if key not in self._windows and len(self._windows) >= MAX_CLIENTS:
                # Spread over more clients than are kept: the rest share one count.
                key = (reason_code, "other")
            if reason_code != RATE_LIMITED:
                self.counted += 1
                if self.limits.per_client_per_second > 0:
                    self._budget(who, mono).tokens -= 1.0
            window = self._windows.get(key)
            if window is None:
                window = _Window(self._new_id(), now, mono)
                window.sample = {k: str(v)[:_FIELD] for k, v in sample.items() if v is not None}
                self._windows[key] = window
            window.count += 1
            window.last = now
            return window.decision_id

    def due(self, *, everything: bool = False) -> list[NewEvent]:
        """The events of the windows that are over (all of them with `everything`, when the
        runtime stops), removed from the aggregator."""
        mono = self._monotonic()
        with self._lock:
            over = [
                key
                for key, window in self._windows.items()
                if everything or mono - window.opened_at >= self.limits.interval_seconds
            ]
            windows = [(key, self._windows.pop(key)) for key in over]
            self.recorded += len(windows)
        return [_event(reason, client, window) for (reason, client), window in windows]


def _event(reason_code: str, client: str, window: _Window) -> NewEvent:
    return NewEvent(
        EVENT_TYPE,
        {
            "decision_id": window.decision_id,
            "client": client,
            "count": window.count,
            "first_ts": round(window.opened, 3),
            "last_ts": round(window.last, 3),
            **window.sample,
        },
        reason_code=reason_code,
    )
