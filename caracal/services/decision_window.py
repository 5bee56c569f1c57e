"""The decisions of the last hour, counted per minute, principal and reason, kept up to date
from the ledger's new events only: a refresh reads what was recorded since the last one, so a
busy workspace costs each refresh its new events, not the hour's."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from caracal.services.denial_aggregator import EVENT_TYPE as AGGREGATED
from caracal.store.schema import ledger_events

MINUTES = 60
MINUTE_US = 60_000_000
ALLOWED, DENIED = "validation.allowed", "validation.denied"
# (minute since the epoch, event type, principal id, reason code)
Key = tuple[int, str, str | None, str | None]


@dataclass(frozen=True)
class WindowCounts:
    allowed_per_minute: tuple[int, ...]  # oldest minute first; the last is the current one
    denied_per_minute: tuple[int, ...]
    by_reason: tuple[tuple[str, int], ...]  # every denial, most frequent first
    by_principal: tuple[tuple[str, int, int], ...]  # (principal id, decisions, denied)


class DecisionWindow:
    """Not thread-safe: the caller serialises refreshes."""

    def __init__(self) -> None:
        self._counts: Counter[Key] = Counter()
        self._seen = 0  # the last ledger sequence counted
        self.events_read = 0  # decision rows read so far (observable: refreshes read the new)

    def refresh(self, conn: Connection, head_seq: int, now_us: int) -> WindowCounts:
        current = now_us // MINUTE_US
        oldest = current - MINUTES + 1
        if head_seq < self._seen:  # another ledger (a restore): count afresh
            self._counts.clear()
            self._seen = 0
        if head_seq > self._seen:
            self._read(conn, self._seen, head_seq, oldest * MINUTE_US)
            self._seen = head_seq
        for key in [k for k in self._counts if k[0] < oldest]:
            del self._counts[key]
        return self._summary(current)

    def _read(self, conn: Connection, after: int, upto: int, since_us: int) -> None:
        c = ledger_events.c
        new = (c.seq > after, c.seq <= upto, c.ts >= since_us)
        minute = (c.ts / MINUTE_US).label("minute")
        for at, kind, principal, reason, n in conn.execute(
            select(minute, c.type, c.principal_id, c.reason_code, func.count())
            .where(*new, c.type.in_((ALLOWED, DENIED)))
            .group_by(minute, c.type, c.principal_id, c.reason_code)
        ):
            self._counts[(int(at), kind, principal, reason)] += int(n)
            self.events_read += int(n)
        # Denials of tokens tied to no key: one event per reason and interval, with its count.
        for ts, reason, payload in conn.execute(
            select(c.ts, c.reason_code, c.payload).where(*new, c.type == AGGREGATED)
        ):
            self._counts[(int(ts) // MINUTE_US, AGGREGATED, None, reason)] += _count(payload)

    def _summary(self, current: int) -> WindowCounts:
        allowed, denied = [0] * MINUTES, [0] * MINUTES
        reasons: Counter[str] = Counter()
        decisions: Counter[str] = Counter()
        refused: Counter[str] = Counter()
        for (at, kind, principal, reason), n in self._counts.items():
            index = min(MINUTES - 1, MINUTES - 1 - (current - at))  # a clock step: now
            if kind == ALLOWED:
                allowed[index] += n
            else:
                reasons[reason or "UNKNOWN"] += n
                if kind == DENIED:
                    denied[index] += n
            if principal is not None:
                decisions[principal] += n
                refused[principal] += n if kind == DENIED else 0
        return WindowCounts(
            tuple(allowed),
            tuple(denied),
            tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
            tuple(
                (pid, n, refused[pid])
                for pid, n in sorted(decisions.items(), key=lambda item: (-item[1], item[0]))
            ),
        )


def _count(payload: str) -> int:
    try:
        count = json.loads(payload).get("count", 0)
    except (ValueError, AttributeError):
        return 0
    return count if isinstance(count, int) and count > 0 else 0
