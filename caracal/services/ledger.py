"""The ledger service: record events inside callers' transactions, list, verify, export."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from caracal.core.errors import IntegrityError, ValidationError
from caracal.core.keys import (
    b64url,
    b64url_decode,
    load_private,
    sign,
    verify,
)
from caracal.core.ledger import GENESIS_HASH, NewEvent, checkpoint_message
from caracal.home.atomic import atomic_writer
from caracal.services import ledger_keys as ledger_keys_mod
from caracal.store import ledger_rows, ledger_scan
from caracal.store.schema import ledger_events

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
# Below this, a worker process costs more than the second core saves.
PARALLEL_VERIFY_MIN = 200_000


@dataclass
class VerifyReport:
    ok: bool
    events: int
    checkpoints: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problem": self.problem,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class LedgerFilter:
    types: list[str] = field(default_factory=list)  # exact type, or a prefix ending in '.'
    principal_id: str | None = None
    mandate_id: str | None = None
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
        if found is None:
            kid, private = ledger_keys_mod.create(conn, self.app.vault, self.app.paths.keys)
        else:
            kid = found[0]
            private = self._private.get(kid) or load_private(self.app.vault.get(conn, found[1]))
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
        before_seq: int | None = None,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        query = select(ledger_events).where(*self._where(flt))
        if before_seq is not None:
            query = query.where(ledger_events.c.seq < before_seq)
        order = ledger_events.c.seq.desc() if newest_first else ledger_events.c.seq
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        with self.app.store.read() as conn:
            return [self._event_dict(r._mapping) for r in conn.execute(query)]

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
        from sqlalchemy import or_

        where: list[Any] = []
        if flt.types:
            # Prefixes compare exactly (no LIKE wildcards, same case rules on every backend).
            clauses = [
                func.substr(ledger_events.c.type, 1, len(t)) == t
                if t.endswith(".")
                else ledger_events.c.type == t
                for t in flt.types
            ]
            where.append(or_(*clauses))
        if flt.principal_id:
            where.append(ledger_events.c.principal_id == flt.principal_id)
        if flt.mandate_id:
            where.append(ledger_events.c.mandate_id == flt.mandate_id)
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
        """Recompute the chain, check every checkpoint against the pinned ledger keys, and
        check that checkpoints cover the ledger without gaps. One snapshot throughout, so
        concurrent appends never look like tampering. Large ledgers are walked in two halves,
        the second in a worker process."""
        started = time.perf_counter()
        pinned = ledger_keys_mod.pinned_keys(self.app.paths.keys)
        with self.app.store.read(snapshot=True) as conn:
            head_seq, head_hash = ledger_rows.head(conn)
            checkpoints = ledger_rows.checkpoints(conn)
            wanted = {cp[1] for cp in checkpoints}
            on_rows = (lambda n: progress(n, head_seq)) if progress is not None else None
            if head_seq >= PARALLEL_VERIFY_MIN and (os.cpu_count() or 1) > 1:
                walk = self._walk_in_halves(conn, head_seq, wanted, on_rows)
            else:
                walk = ledger_scan.walk_cursor(
                    _cursor(conn, streaming=True), _placeholder(conn), 1, None, wanted, on_rows
                )
        report = VerifyReport(True, walk.count, len(checkpoints), head_seq, head_hash)
        last_seq = walk.expected_seq - 1
        report.problem = walk.failure.describe() if walk.failure else None
        report.problem = report.problem or self._checkpoint_problem(
            last_seq, walk.seen, checkpoints, pinned
        )
        report.problem = report.problem or _head_problem(
            last_seq, walk.last_hash, head_seq, head_hash
        )
        report.ok = report.problem is None
        report.seconds = time.perf_counter() - started
        log.info("ledger verify: %s", report.problem or f"{walk.count} events intact")
        return report

    def _walk_in_halves(
        self,
        conn: Connection,
        head_seq: int,
        wanted: set[int],
        on_rows: Callable[[int], None] | None,
    ) -> ledger_scan.RangeResult:
        location = self.app.store.location
        backend = location.backend
        dsn = (
            location.url.removeprefix("sqlite:///")
            if backend == "sqlite"
            else location.url.replace("+psycopg", "", 1)
        )
        mid = head_seq // 2
        worker = ledger_scan.run_worker(backend, dsn, location.pg_schema, mid + 1, head_seq, wanted)
        try:
            first = ledger_scan.walk_cursor(
                _cursor(conn, streaming=True), _placeholder(conn), 1, mid, wanted, on_rows
            )
        except BaseException:
            worker.kill()
            worker.communicate()
            raise
        joined = ledger_scan.join(first, ledger_scan.collect(worker, mid + 1))
        # The halves stop at the head; anything stored beyond it is reported by the head check.
        beyond = conn.execute(select(func.max(ledger_events.c.seq))).scalar() or 0
        if joined.failure is None and beyond > head_seq:
            joined.expected_seq = beyond + 1
        return joined

    def _checkpoint_problem(
        self,
        last_seq: int,
        seen: dict[int, str],
        checkpoints: list[tuple[int, int, str, str, str]],
        pinned: dict[str, ec.EllipticCurvePublicKey],
    ) -> str | None:
        covered, widest = 0, 0
        for seq_from, seq_to, cp_hash, kid, signature in checkpoints:
            label = f"checkpoint over events {seq_from}-{seq_to}"
            if seq_from != covered + 1 or seq_to < seq_from:
                return (
                    f"{label}: checkpoints do not follow on from event {covered} (one was removed)"
                )
            key = pinned.get(kid)
            if key is None:
                return f"{label}: signed by key {kid}, which this workspace did not pin in keys/"
            message = checkpoint_message(self.app.workspace_id, seq_from, seq_to, cp_hash)
            try:
                signature_ok = verify(key, message, b64url_decode(signature))
            except ValueError:
                signature_ok = False
            if not signature_ok:
                return f"{label}: signature does not verify"
            if seq_to > last_seq:
                return f"{label}: the ledger ends at event {last_seq} (events were removed)"
            if seen.get(seq_to) != cp_hash:
                return f"{label}: event {seq_to} is not the event that was signed"
            covered, widest = seq_to, max(widest, seq_to - seq_from + 1)
        # Appends sign a checkpoint at every boundary they cross, so a long unsealed tail
        # means checkpoints were deleted.
        allowed_tail = max(self.app.config.ledger.checkpoint_every, widest)
        if last_seq - covered > allowed_tail:
            return (
                f"events {covered + 1}-{last_seq} are not covered by any checkpoint "
                "(checkpoints were removed)"
            )
        return None

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


def _head_problem(
    last_seq: int, last_hash: str | None, head_seq: int, head_hash: str
) -> str | None:
    expected_hash = last_hash if last_seq > 0 else GENESIS_HASH
    if head_seq != last_seq or head_hash != expected_hash:
        return (
            f"ledger head records event {head_seq} but the last event is {last_seq} "
            "(events were removed or added outside Caracal)"
        )
    return None


def _cursor(conn: Connection, *, streaming: bool = False) -> Any:
    dbapi: Any = conn.connection.dbapi_connection
    if streaming and conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="caracal_ledger_verify")
        cursor.itersize = ledger_scan.BATCH
        return cursor
    return dbapi.cursor()


def _placeholder(conn: Connection) -> str:
    return "%s" if conn.dialect.name == "postgresql" else "?"
