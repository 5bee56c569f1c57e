"""Reading the ledger: filtered pages of events, counts, the search box, and exports to a
file or stream."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import func, select

from caracal.core.errors import ValidationError
from caracal.core.progress import SILENT, Progress
from caracal.home.atomic import output_writer
from caracal.services.ledger_query import LedgerQuery
from caracal.store import ledger_rows
from caracal.store.schema import ledger_events

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

EXPORT_REPORT_EVERY = 1000  # events between two progress reports (and stop checks)


@dataclass
class LedgerFilter:
    types: list[str] = field(default_factory=list)  # exact type, or a prefix ending in '.'
    principal_id: str | None = None
    mandate_id: str | None = None
    id_prefix: str | None = None  # the start of a mandate or principal id (mnd_…, pr_…)
    since_us: int | None = None
    reason_code: str | None = None


def _check_format(fmt: str) -> None:
    if fmt not in ("json", "csv"):
        raise ValidationError(f"Unknown export format {fmt!r}: use json or csv.")


class LedgerReads:
    """The reading part of `LedgerService`."""

    app: Caracal

    def head(self) -> tuple[int, str]:
        with self.app.store.read() as conn:
            return ledger_rows.head(conn)

    def events(
        self,
        flt: LedgerFilter,
        *,
        limit: int | None = 50,
        offset: int = 0,
        before_seq: int | None = None,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        where = self._where(flt)
        with self.app.store.read() as conn:
            if not where and newest_first and offset and before_seq is None:
                # Unfiltered, newest first: sequence numbers have no gaps, so an offset is a
                # seq bound (an index seek), not rows skipped one by one.
                head, _ = ledger_rows.head(conn)
                before_seq, offset = head - offset + 1, 0
            query = select(ledger_events).where(*where)
            if before_seq is not None:
                query = query.where(ledger_events.c.seq < before_seq)
            order = ledger_events.c.seq.desc() if newest_first else ledger_events.c.seq
            query = query.order_by(order).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            return [self._event_dict(r._mapping) for r in conn.execute(query)]

    def parse_query(self, text: str) -> LedgerQuery:
        """The Ledger search words as a filter (types, reason code, principal name, id start),
        with the words that are none of those."""
        from caracal.services.ledger_query import parse_ledger_query

        if not text.strip():
            return LedgerQuery()
        names = {p["name"]: p["id"] for p in self.app.principals.all()}
        return parse_ledger_query(text, names)

    def count(self, flt: LedgerFilter) -> int:
        where = self._where(flt)
        with self.app.store.read() as conn:
            if not where:
                return ledger_rows.head(conn)[0]
            query = select(func.count()).select_from(ledger_events).where(*where)
            return int(conn.execute(query).scalar() or 0)

    def iter_events(self, flt: LedgerFilter, batch: int = 10_000) -> Iterator[dict[str, Any]]:
        """All matching events, oldest first, streamed."""
        after = 0
        while True:
            query = (
                select(ledger_events)
                .where(*self._where(flt), ledger_events.c.seq > after)
                .order_by(ledger_events.c.seq)
                .limit(batch)
            )
            with self.app.store.read() as conn:
                rows = [self._event_dict(r._mapping) for r in conn.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1]["seq"]

    @staticmethod
    def _where(flt: LedgerFilter) -> list[Any]:
        from sqlalchemy import and_, or_

        where: list[Any] = []
        if flt.types:
            # A prefix is a range (it uses the index, and has no LIKE wildcards or case rules):
            # "validation." .. "validation/" ('/' sorts right after '.').
            clauses = [
                and_(ledger_events.c.type >= t, ledger_events.c.type < t[:-1] + "/")
                if t.endswith(".")
                else ledger_events.c.type == t
                for t in flt.types
            ]
            where.append(or_(*clauses))
        if flt.principal_id:
            where.append(ledger_events.c.principal_id == flt.principal_id)
        if flt.mandate_id:
            where.append(ledger_events.c.mandate_id == flt.mandate_id)
        if flt.id_prefix:
            # Ids hold no character above '~': prefix .. prefix + '~' is an index range.
            column = (
                ledger_events.c.mandate_id
                if flt.id_prefix.startswith("mnd_")
                else ledger_events.c.principal_id
            )
            where += [column >= flt.id_prefix, column <= flt.id_prefix + "~"]
        if flt.since_us is not None:
            where.append(ledger_events.c.ts >= flt.since_us)
        if flt.reason_code:
            where.append(ledger_events.c.reason_code == flt.reason_code)
        return where

    @staticmethod
    def _event_dict(row: Any) -> dict[str, Any]:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        return data

    def export(
        self,
        path: Path,
        fmt: str,
        flt: LedgerFilter | None = None,
        *,
        overwrite: bool = False,
        progress: Progress = SILENT,
    ) -> int:
        """Write every event to `path` (a FIFO or character device directly; see
        `output_writer`). A file appears complete or not at all: a stop through `progress`,
        or ctrl+c, leaves none."""
        _check_format(fmt)
        with output_writer(path, overwrite=overwrite) as raw:
            return self.write_export(raw, fmt, flt, progress)

    def write_export(
        self,
        raw: BinaryIO,
        fmt: str,
        flt: LedgerFilter | None = None,
        progress: Progress = SILENT,
    ) -> int:
        """Write every event to an open binary stream (standard output, say)."""
        _check_format(fmt)
        flt = flt or LedgerFilter()
        total = self.count(flt) if progress is not SILENT else None
        report = progress.counter("Exporting the ledger", total, "events")
        columns = list(ledger_rows.COLUMNS)
        count = 0
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        if fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(columns)
            for event in self.iter_events(flt):
                event["payload"] = json.dumps(
                    event["payload"], sort_keys=True, separators=(",", ":")
                )
                writer.writerow([event[c] for c in columns])
                count += 1
                if count % EXPORT_REPORT_EVERY == 0:
                    report(count)
        else:
            out.write("[\n")
            for event in self.iter_events(flt):
                out.write(
                    ("" if count == 0 else ",\n")
                    + json.dumps({c: event[c] for c in columns}, sort_keys=True)
                )
                count += 1
                if count % EXPORT_REPORT_EVERY == 0:
                    report(count)
            out.write("\n]\n")
        out.flush()
        report(count)  # the last moment a stop leaves no file
        out.detach()  # the caller owns (and closes) the stream
        return count
