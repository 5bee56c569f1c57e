"""The workspace's pulse, for a dashboard that is looked at rather than read: decisions per
minute over the last hour, denials by reason, mandates about to expire, the busiest principals
(by name), and the ledger head with when it was last verified.

Verification is incremental and remembered: a check walks only the events recorded since the
last verified head (see `LedgerService.verify`), and none at all when the head has not moved."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from caracal.core.pulse_figures import BusyPrincipal, Expiring, Pulse
from caracal.services.decision_window import DecisionWindow
from caracal.store import ledger_rows, mandate_rows
from caracal.store.schema import mandates, principals

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


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
        self.window = DecisionWindow()
        self._window_lock = threading.Lock()

    def pulse(self, limit: int = 5) -> Pulse:
        now = self.app.clock()
        with self.app.store.read(snapshot=True) as conn:
            head_seq, _ = ledger_rows.head(conn)
            principal_count = int(
                conn.execute(select(func.count()).select_from(principals)).scalar() or 0
            )
            active = mandate_rows.count(conn, status="active", now=int(now))
            with self._window_lock:
                counts = self.window.refresh(conn, head_seq, int(now * 1_000_000))
            top = counts.by_principal[:limit]
            names = dict(
                conn.execute(
                    select(principals.c.id, principals.c.name).where(
                        principals.c.id.in_([pid for pid, _, _ in top])
                    )
                ).all()
            )
            expiring = self._expiring(conn, int(now), limit)
        busiest = tuple(
            BusyPrincipal(pid, str(names.get(pid, pid)), n, refused) for pid, n, refused in top
        )
        return Pulse(
            self.app.name,
            principal_count,
            active,
            counts.allowed_per_minute,
            counts.denied_per_minute,
            counts.by_reason,
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

    # ---- the ledger head ---------------------------------------------------------------
    def check_ledger(self, *, again: bool = False) -> LedgerCheck:
        """Verify what was recorded since the last check (everything after the last verified
        tree the first time), or nothing when the head has not moved (unless `again`: the
        signed head and its copies are checked anew, still without walking old events)."""
        with self._lock:
            with self.app.store.read() as conn:
                head = ledger_rows.head(conn)
            last = self.last_check
            if not again and last is not None and last.ok and head == self._checked:
                return last
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
