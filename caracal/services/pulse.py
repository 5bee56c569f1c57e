"""The workspace's pulse, for a dashboard that is looked at rather than read: decisions per
minute over the last hour, denials by reason, mandates about to expire, the busiest principals
(by name), and the ledger head with when it was last verified.

Verification is incremental and remembered: a check walks only the events recorded since the
last verified head (see `LedgerService.verify`), and none at all when the head has not moved."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, case, func, select

from caracal.services.denial_aggregator import EVENT_TYPE as AGGREGATED
from caracal.store import ledger_rows, mandate_rows
from caracal.store.schema import ledger_events, mandates, principals

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

MINUTES = 60
ALLOWED, DENIED = "validation.allowed", "validation.denied"
_DECISIONS = (ALLOWED, DENIED)
_MINUTE_US = 60_000_000


@dataclass(frozen=True)
class Expiring:
    mandate_id: str
    subject: str  # the subject's name
    issuer: str
    expires_at: int  # epoch seconds


@dataclass(frozen=True)
class BusyPrincipal:
    principal_id: str
    name: str
    decisions: int
    denied: int


@dataclass(frozen=True)
class Pulse:
    workspace: str
    principals: int
    active_mandates: int
    allowed_per_minute: tuple[int, ...]  # the last hour, oldest minute first
    denied_per_minute: tuple[int, ...]
    denials_by_reason: tuple[tuple[str, int], ...]  # most frequent first
    expiring: tuple[Expiring, ...]  # within the next hour, soonest first
    busiest: tuple[BusyPrincipal, ...]  # most decisions in the last hour first
    head_seq: int
    at: float  # when these figures were read (epoch seconds)

    @property
    def allowed(self) -> int:
        return sum(self.allowed_per_minute)

    @property
    def denied(self) -> int:
        """Every denial of the hour, with those of tokens tied to no key (which are recorded
        in aggregate, so they have a reason but no minute)."""
        return sum(n for _, n in self.denials_by_reason)


@dataclass(frozen=True)
class LedgerCheck:
    """The last verification of the ledger head: whether it held, at which head, and when."""

    ok: bool
    head_seq: int
    verified_at: datetime  # local time
    walked: int  # events this check walked
    since: int = 0  # > 0: it walked only the events after this one (incremental)
    problem: str | None = None


class PulseService:
    def __init__(self, app: Caracal) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._checked: tuple[int, str] | None = None  # the head the last check covered
        self.last_check: LedgerCheck | None = None
        self.events_walked = 0  # every event the checks walked in this process (observable)

    def pulse(self, limit: int = 5) -> Pulse:
        now = self.app.clock()
        now_us = int(now * 1_000_000)
        since = now_us - MINUTES * _MINUTE_US
        allowed = [0] * MINUTES
        denied = [0] * MINUTES
        reasons: dict[str, int] = {}
        with self.app.store.read() as conn:
            principal_count = int(
                conn.execute(select(func.count()).select_from(principals)).scalar() or 0
            )
            active = mandate_rows.count(conn, status="active", now=int(now))
            minute = ((ledger_events.c.ts - since) / _MINUTE_US).label("minute")
            recent = and_(ledger_events.c.ts >= since, ledger_events.c.ts <= now_us)
            for kind, at, n in conn.execute(
                select(ledger_events.c.type, minute, func.count())
                .where(recent, ledger_events.c.type.in_(_DECISIONS))
                .group_by(ledger_events.c.type, minute)
            ):
                index = min(max(int(at), 0), MINUTES - 1)
                (allowed if kind == ALLOWED else denied)[index] += int(n)
            for code, n in conn.execute(
                select(ledger_events.c.reason_code, func.count())
                .where(recent, ledger_events.c.type == DENIED)
                .group_by(ledger_events.c.reason_code)
            ):
                reasons[code or "UNKNOWN"] = reasons.get(code or "UNKNOWN", 0) + int(n)
            for code, payload in conn.execute(
                select(ledger_events.c.reason_code, ledger_events.c.payload).where(
                    recent, ledger_events.c.type == AGGREGATED
                )
            ):
                reasons[code or "UNKNOWN"] = reasons.get(code or "UNKNOWN", 0) + _count(payload)
            expiring = self._expiring(conn, int(now), limit)
            busiest = self._busiest(conn, since, limit)
            head_seq, _ = ledger_rows.head(conn)
        return Pulse(
            self.app.name,
            principal_count,
            active,
            tuple(allowed),
            tuple(denied),
            tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
            expiring,
            busiest,
            head_seq,
            now,
        )

    @staticmethod
    def _expiring(conn: Connection, now: int, limit: int) -> tuple[Expiring, ...]:
        subject = principals.alias("subject")
        issuer = principals.alias("issuer")
        rows = conn.execute(
            select(mandates.c.id, subject.c.name, issuer.c.name, mandates.c.expires_at)
            .join(subject, subject.c.id == mandates.c.subject_id)
            .join(issuer, issuer.c.id == mandates.c.issuer_id)
            .where(
                mandates.c.revoked_at.is_(None),
                mandates.c.expires_at > now,
                mandates.c.expires_at <= now + 3600,
            )
            .order_by(mandates.c.expires_at, mandates.c.id)
            .limit(limit)
        )
        return tuple(Expiring(str(i), str(s), str(by), int(at)) for i, s, by, at in rows)

    @staticmethod
    def _busiest(conn: Connection, since: int, limit: int) -> tuple[BusyPrincipal, ...]:
        denied = func.sum(case((ledger_events.c.type == DENIED, 1), else_=0))
        total = func.count().label("total")
        rows = conn.execute(
            select(principals.c.id, principals.c.name, total, denied)
            .select_from(ledger_events)
            .join(principals, principals.c.id == ledger_events.c.principal_id)
            .where(ledger_events.c.ts >= since, ledger_events.c.type.in_(_DECISIONS))
            .group_by(principals.c.id, principals.c.name)
            .order_by(total.desc(), principals.c.name)
            .limit(limit)
        )
        return tuple(BusyPrincipal(str(i), str(n), int(t), int(d or 0)) for i, n, t, d in rows)

    # ---- the ledger head ---------------------------------------------------------------
    def check_ledger(self) -> LedgerCheck:
        """Verify what was recorded since the last check (everything after the last verified
        tree the first time), or nothing when the head has not moved."""
        with self._lock:
            with self.app.store.read() as conn:
                head = ledger_rows.head(conn)
            if self.last_check is not None and self.last_check.ok and head == self._checked:
                return self.last_check
            report = self.app.ledger.verify(incremental=True)
            self.events_walked += report.events
            self._checked = (report.head_seq, report.head_hash) if report.ok else None
            self.last_check = LedgerCheck(
                report.ok,
                report.head_seq,
                datetime.now(),
                report.events,
                report.since,
                report.problem,
            )
            return self.last_check


def _count(payload: str) -> int:
    try:
        count = json.loads(payload).get("count", 0)
    except (ValueError, AttributeError):
        return 0
    return count if isinstance(count, int) and count > 0 else 0
