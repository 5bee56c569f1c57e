"""The dashboard's numbers: what is in the workspace and what happened lately."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from caracal.services.denial_aggregator import EVENT_TYPE
from caracal.services.ledger_reads import LedgerFilter
from caracal.store import ledger_rows, mandate_rows
from caracal.store.schema import ledger_events, principals

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


@dataclass(frozen=True)
class Overview:
    workspace: str
    store: str
    principals: int
    active_mandates: int
    denials_last_hour: int
    ledger_events: int
    recent: list[dict[str, Any]] = field(default_factory=list)


class OverviewService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    def summary(self, recent: int = 12) -> Overview:
        now = self.app.clock()
        with self.app.store.read() as conn:
            principal_count = int(
                conn.execute(select(func.count()).select_from(principals)).scalar() or 0
            )
            active = mandate_rows.count(conn, status="active", now=int(now))
            since = int((now - 3600) * 1_000_000)
            denials = int(
                conn.execute(
                    select(func.count())
                    .select_from(ledger_events)
                    .where(ledger_events.c.type == "validation.denied", ledger_events.c.ts >= since)
                ).scalar()
                or 0
            )
            # Denials of tokens tied to no key are recorded in aggregate, with their count.
            for (payload,) in conn.execute(
                select(ledger_events.c.payload).where(
                    ledger_events.c.type == EVENT_TYPE, ledger_events.c.ts >= since
                )
            ):
                denials += _count(payload)
            head_seq, _ = ledger_rows.head(conn)
        events = self.app.ledger.events(LedgerFilter(), limit=recent)
        return Overview(
            self.app.name,
            self.app.store.location.describe(),
            principal_count,
            active,
            denials,
            head_seq,
            events,
        )


def _count(payload: str) -> int:
    try:
        count = json.loads(payload).get("count", 0)
    except (ValueError, AttributeError):
        return 0
    return count if isinstance(count, int) and count > 0 else 0
