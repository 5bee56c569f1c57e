"""The ledger service: record events inside callers' transactions, list, verify, export."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Connection, func, select

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.errors import IntegrityError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.merkle import Frontier
from caracal.core.progress import SILENT, Progress
from caracal.core.tree_head import HeadFormatError, TreeHead
from caracal.home.atomic import atomic_write_text, output_writer
from caracal.services.ledger_query import LedgerQuery
from caracal.services.ledger_verify import VerifiedPoint, VerifyReport, verify_ledger
from caracal.store import ledger_rows
from caracal.store.engine import after_commit
from caracal.store.schema import ledger_events

if TYPE_CHECKING:
    from caracal.services.facade import Caracal
    from caracal.services.ledger_head import Discrepancy, LedgerHeads

log = logging.getLogger(__name__)
EXPORT_REPORT_EVERY = 1000  # events between two progress reports (and stop checks)
VERIFIED_FILE = "ledger-verified.json"  # in the workspace's cache folder
KEPT_HEAD_EVENT = "ledger.head_kept"


@dataclass(frozen=True)
class HeadCopy:
    """One copy of the head kept outside the store, as it is now."""

    source: str
    size: int | None  # the head it holds (None: none, or unreadable)
    state: str  # in step | N events behind | ahead of the store | holds none yet | unreadable: …
    ok: bool  # False only when it shows the store was rolled back or it cannot be read


@dataclass(frozen=True)
class HeadStatus:
    head: TreeHead
    key_sha256: str | None
    copies: list[HeadCopy]


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


class LedgerService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    @property
    def heads(self) -> LedgerHeads:
        return self.app.ledger_heads

    # ---- writing --------------------------------------------------------------------------
    def record(
        self, conn: Connection, *events: NewEvent, locked: ledger_rows.StoredHead | None = None
    ) -> int:
        """Append events in the caller's transaction and sign the new tree head; the head is
        published outside the store once the transaction commits. Returns the sequence number
        of the last of `events`. `locked` is the head this transaction already read with its
        lock (`read_head(conn, lock=True)`) and has not appended to since: it is not read
        again."""
        if not events:
            return 0
        heads = self.heads
        head = locked if locked is not None else ledger_rows.read_head(conn, lock=True)
        heads.trust(head)
        ts_us = int(self.app.clock() * 1_000_000)
        appended = ledger_rows.append(
            conn, events, head=head, actor=self.app.actor, ts_us=ts_us, frontier=heads.tree_of(head)
        )
        signed = heads.sign(conn, appended, ts_us)
        every = self.app.config.ledger.checkpoint_every
        if head.size // every != signed.size // every:
            signed = self._keep(conn, signed, ts_us)
        final = signed
        after_commit(conn, lambda: heads.committed(final))
        return appended.size

    def _keep(self, conn: Connection, head: TreeHead, ts_us: int) -> TreeHead:
        """Keep `head` in the history, and record that it was kept (so the history, like every
        other table, is derivable from the events: a deleted kept head is noticed)."""
        ledger_rows.insert_checkpoint(conn, head)
        kept = NewEvent(KEPT_HEAD_EVENT, {"size": head.size, "root": head.root, "ts": head.ts_us})
        stored = ledger_rows.read_head(conn)
        appended = ledger_rows.append(
            conn,
            [kept],
            head=stored,
            actor=self.app.actor,
            ts_us=ts_us,
            frontier=self.heads.tree_of(stored),
        )
        return self.heads.sign(conn, appended, ts_us)

    def checkpoint(self) -> dict[str, Any] | None:
        """Keep the current signed head in the history and send the newest head to every
        witness now (e.g. before a backup). None when it is already kept."""

        def work(conn: Connection) -> TreeHead | None:
            stored = ledger_rows.read_head(conn, lock=True)
            self.heads.trust(stored)
            signed = stored.signed(self.app.workspace_id)
            kept = ledger_rows.last_checkpoint_size(conn)
            # Nothing new: the head is kept, or all that followed is the event recording it.
            if (
                signed is None
                or kept >= signed.size
                or (
                    kept == signed.size - 1
                    and ledger_rows.event_type(conn, signed.size) == KEPT_HEAD_EVENT
                )
            ):
                return None
            ts_us = int(self.app.clock() * 1_000_000)
            newest = self._keep(conn, signed, ts_us)
            after_commit(conn, lambda: self.heads.committed(newest))
            return signed

        kept = self.app.store.write(work)
        self.heads.publisher.flush()
        if kept is None:
            return None
        return {"size": kept.size, "root": kept.root, "ts": kept.ts_us}

    def signed_head(self) -> TreeHead:
        """The store's current signed tree head."""
        with self.app.store.read() as conn:
            stored = ledger_rows.read_head(conn).signed(self.app.workspace_id)
        if stored is None:
            raise IntegrityError("The ledger head is not signed; run `caracal ledger verify`.")
        return stored

    def head_document(self) -> dict[str, Any]:
        """The signed head as `caracal ledger head --json` prints it, with the signing key's
        fingerprint and where copies are kept."""
        head = self.signed_head()
        status = self.heads.publisher.status
        return {
            **head.to_dict(),
            "key_sha256": self.heads.fingerprint(head.kid),
            "copies": [
                {**s.to_dict(), **({"recorded": True} if s.size else {})} for s in status.values()
            ],
        }

    def head_status(self) -> HeadStatus:
        """The signed head and how each copy outside the store compares with it (what Flow's
        Ledger screen shows)."""
        head = self.signed_head()
        copies = []
        for source, held, problem in self.heads.publisher.recorded():
            if problem:
                copies.append(HeadCopy(source, None, problem, False))
            elif held is None:
                copies.append(HeadCopy(source, None, "holds no head yet", True))
            elif held.size > head.size:
                copies.append(
                    HeadCopy(source, held.size, "AHEAD of the store (rolled back?)", False)
                )
            elif held.size == head.size:
                same = held.same_tree(head)
                copies.append(HeadCopy(source, held.size, "in step" if same else "FORKED", same))
            else:
                copies.append(HeadCopy(source, held.size, f"{head.size - held.size} behind", True))
        return HeadStatus(head, self.heads.fingerprint(head.kid), copies)

    def prove(self, seq: int) -> dict[str, Any]:
        from caracal.services.ledger_proofs import inclusion_proof

        return inclusion_proof(self.app.store, self.heads.pinned, self.app.workspace_id, seq)

    def consistency_since(self, saved: bytes) -> dict[str, Any]:
        """A consistency proof from a head saved earlier (`caracal ledger head --json`)."""
        from caracal.services.head_witnesses import parse_head
        from caracal.services.ledger_proofs import consistency_proof

        try:
            old = parse_head(saved, "the saved head")
        except HeadFormatError as exc:
            raise ValidationError(
                f"{exc}; give a file written by `caracal ledger head --json`."
            ) from None
        return consistency_proof(self.app.store, self.heads.pinned, self.app.workspace_id, old)

    def rollback_findings(self) -> list[Discrepancy]:
        """Every copy of the head kept outside the store that the store's ledger does not
        extend (what `accept-rollback` would accept)."""
        recorded = self.heads.recorded()
        with self.app.store.read(snapshot=True) as conn:
            stored = ledger_rows.read_head(conn).signed(self.app.workspace_id)
            if stored is None:
                raise IntegrityError("The ledger head is not signed; run `caracal ledger verify`.")
            self.heads.pinned.check(stored, "The store's ledger head")
            return self.heads.discrepancies(conn, stored, recorded)

    def accept_rollback(self) -> tuple[list[Discrepancy], TreeHead | None]:
        """Continue from the store's ledger: record what was accepted (an event under a new
        signed head) and make every copy outside the store hold that head."""
        findings = self.rollback_findings()
        if not findings:
            return [], None
        self.heads.forget_commits()
        event = NewEvent(
            "ledger.rollback_accepted",
            {
                "accepted": [
                    {
                        "source": f.source,
                        "kind": f.kind,
                        "recorded_size": f.recorded.size,
                        "recorded_root": f.recorded.root,
                        "recorded_ts": f.recorded.ts_us,
                        "stored_size": f.stored.size,
                        "stored_root": f.stored.root,
                    }
                    for f in findings
                ]
            },
        )
        self.app.store.write(lambda conn: self.record(conn, event))
        head = self.signed_head()
        self.heads.publisher.force(head)
        log.warning("ledger rollback accepted: %s", "; ".join(f.describe() for f in findings))
        return findings, head

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

    # ---- verification ---------------------------------------------------------------------
    def verify(
        self,
        progress: Progress = SILENT,
        *,
        incremental: bool = False,
    ) -> VerifyReport:
        """See `ledger_verify.verify_ledger`. `incremental` walks only the events after the
        last tree a full verify established (kept in the workspace's cache folder), and skips
        the state replay; without such a tree it verifies everything. A stop through
        `progress` raises `Cancelled` before anything is remembered."""
        since = self._verified_point() if incremental else None
        report = verify_ledger(
            self.app.store,
            self.heads.pinned,
            self.app.workspace_id,
            self.heads.publisher.recorded(),
            state_check=None if since is not None else self._state_check,
            since=since,
            progress=lambda done, total: progress("Verifying the ledger", done, total, "events"),
        )
        progress.check()
        if report.ok and report.tree is not None:
            self._remember_verified(report, full=since is None)
        log.info("ledger verify: %s", report.problem or f"{report.events} events intact")
        return report

    def require_intact(self) -> VerifyReport:
        report = self.verify()
        if not report.ok:
            raise IntegrityError(f"Ledger verification failed at {report.problem}.")
        return report

    def last_verified(self) -> dict[str, Any] | None:
        """What the last successful verify established: size, time, whether it was full."""
        data = self._verified_data()
        if data is None:
            return None
        return {k: data.get(k) for k in ("size", "verified_at", "full_at", "full_size")}

    @staticmethod
    def _state_check(conn: Connection, events: list[Any]) -> tuple[int, str | None]:
        from caracal.services.ledger_state import compare_state

        return compare_state(conn, events)

    @property
    def _verified_file(self) -> Path:
        return self.app.paths.cache / VERIFIED_FILE

    def _verified_data(self) -> dict[str, Any] | None:
        try:
            data = strict_loads(self._verified_file.read_bytes())
        except (OSError, StrictJSONError):
            return None
        if not isinstance(data, dict) or data.get("workspace_id") != self.app.workspace_id:
            return None
        return data

    def _verified_point(self) -> VerifiedPoint | None:
        data = self._verified_data()
        try:
            assert data is not None
            tree = Frontier.decode(int(data["size"]), str(data["frontier"]))
            if tree.root().hex() != data["root"]:
                return None
            return VerifiedPoint(tree.size, str(data["last_hash"]), tree)
        except (AssertionError, KeyError, TypeError, ValueError):
            return None

    def _remember_verified(self, report: VerifyReport, *, full: bool) -> None:
        assert report.tree is not None
        previous = self._verified_data() or {}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        data = {
            "workspace_id": self.app.workspace_id,
            "size": report.tree.size,
            "root": report.tree.root().hex(),
            "last_hash": report.head_hash,
            "frontier": report.tree.encode(),
            "verified_at": now,
            "full_at": now if full else previous.get("full_at"),
            "full_size": report.tree.size if full else previous.get("full_size"),
        }
        try:
            self.app.paths.cache.mkdir(mode=0o700, exist_ok=True)
            atomic_write_text(self._verified_file, json.dumps(data) + "\n")
        except OSError as exc:  # only a shortcut for the next verify: never a failure
            log.warning("could not remember the verified ledger: %s", exc)

    # ---- export ---------------------------------------------------------------------------
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
