"""The ledger service: record events inside callers' transactions, list, verify, export."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from caracal.core.errors import IntegrityError, ValidationError
from caracal.core.keys import (
    b64url,
    load_private,
    sign,
)
from caracal.core.ledger import NewEvent, checkpoint_message
from caracal.home.atomic import atomic_writer
from caracal.services import ledger_keys as ledger_keys_mod
from caracal.services.ledger_verify import VerifyReport, verify_ledger
from caracal.store import ledger_rows, secret_rows
from caracal.store.schema import ledger_events

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)


@dataclass
class LedgerFilter:
    types: list[str] = field(default_factory=list)  # exact type, or a prefix ending in '.'
    principal_id: str | None = None
    mandate_id: str | None = None
    id_prefix: str | None = None  # the start of a mandate or principal id (mnd_…, pr_…)
    since_us: int | None = None
    reason_code: str | None = None


class LedgerService:
    def __init__(self, app: Caracal) -> None:
        self.app = app
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}

    # ---- writing --------------------------------------------------------------------------
    def record(self, conn: Connection, *events: NewEvent) -> int:
        """Append events in the caller's transaction; returns the last sequence number."""
        rows = ledger_rows.append(
            conn,
            events,
            actor=self.app.actor,
            ts_us=int(self.app.clock() * 1_000_000),
            checkpoint_every=self.app.config.ledger.checkpoint_every,
            on_checkpoint=self._sign_checkpoint,
        )
        return rows[-1][0] if rows else 0

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign a checkpoint over everything after the last one (e.g. before a backup)."""

        def work(conn: Connection) -> dict[str, Any] | None:
            seq, head_hash = ledger_rows.head(conn, lock=True)
            last = ledger_rows.last_checkpoint_seq(conn)
            if seq <= last:
                return None
            self._sign_checkpoint(conn, seq, head_hash)
            return {"seq_from": last + 1, "seq_to": seq, "head_hash": head_hash}

        return self.app.store.write(work)

    def _sign_checkpoint(self, conn: Connection, seq_to: int, head_hash: str) -> None:
        seq_from = ledger_rows.last_checkpoint_seq(conn) + 1
        kid, private = self._ledger_key(conn)
        message = checkpoint_message(self.app.workspace_id, seq_from, seq_to, head_hash)
        ledger_rows.insert_checkpoint(
            conn,
            seq_from,
            seq_to,
            head_hash,
            kid,
            b64url(sign(private, message)),
            int(self.app.clock() * 1e6),
        )

    def _ledger_key(self, conn: Connection) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The key to sign with, as this transaction sees it. The private key is cached by kid
        only; which kid is current is read every time, so a rolled-back key is never reused."""
        found = ledger_keys_mod.current(conn)
        sealed = (
            secret_rows.get(conn, found[1]) if found and found[0] not in self._private else None
        )
        if found is None or (found[0] not in self._private and sealed is None):
            # No key yet, or its private half did not come with a backup without secrets.
            kid, private = ledger_keys_mod.create(conn, self.app.vault, self.app.paths.keys)
        else:
            kid = found[0]
            private = self._private.get(kid) or load_private(
                self.app.cipher.open(sealed or b"", found[1])
            )
        self._private[kid] = private
        return kid, private

    # ---- reading --------------------------------------------------------------------------
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

    # ---- verification ---------------------------------------------------------------------
    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """See `ledger_verify.verify_ledger`."""
        report = verify_ledger(
            self.app.store,
            self.app.paths.keys,
            self.app.workspace_id,
            self.app.config.ledger.checkpoint_every,
            progress,
        )
        log.info("ledger verify: %s", report.problem or f"{report.events} events intact")
        return report

    def require_intact(self) -> VerifyReport:
        report = self.verify()
        if not report.ok:
            raise IntegrityError(f"Ledger verification failed at {report.problem}.")
        return report

    # ---- export ---------------------------------------------------------------------------
    def export(self, path: Path, fmt: str, flt: LedgerFilter | None = None) -> int:
        if fmt not in ("json", "csv"):
            raise ValidationError(f"Unknown export format {fmt!r}: use json or csv.")
        flt = flt or LedgerFilter()
        columns = list(ledger_rows.COLUMNS)
        count = 0
        with atomic_writer(path) as raw:
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
            else:
                out.write("[\n")
                for event in self.iter_events(flt):
                    out.write(
                        ("" if count == 0 else ",\n")
                        + json.dumps({c: event[c] for c in columns}, sort_keys=True)
                    )
                    count += 1
                out.write("\n]\n")
            out.flush()
            out.detach()  # the atomic writer owns (and closes) the file
        return count
