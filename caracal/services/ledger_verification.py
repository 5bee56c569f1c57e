"""The ledger service's verify entry points: a full or incremental run of
`ledger_verify.verify_ledger`, and the verified point remembered between runs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.errors import IntegrityError
from caracal.core.merkle import Frontier
from caracal.core.progress import SILENT, Progress
from caracal.home.atomic import atomic_write_text
from caracal.services.ledger_verify import VerifiedPoint, VerifyReport, verify_ledger

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

# The ledger service's one logger name, whichever part of it logs (log filters rely on it).
log = logging.getLogger("caracal.services.ledger")
VERIFIED_FILE = "ledger-verified.json"  # in the workspace's cache folder


class LedgerVerification:
    """The verifying part of `LedgerService`."""

    app: Caracal

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
            self.app.ledger_heads.pinned,
            self.app.workspace_id,
            self.app.ledger_heads.publisher.recorded(),
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
