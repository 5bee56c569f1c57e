"""Verify an archive without restoring it: who signed it and whether that key is trusted,
every member's hash, every table's row count, the ledger against its signed head, and the
authority tables against the state the ledger's events produce."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caracal.core.errors import IntegrityError
from caracal.core.ledger import ChainWalk
from caracal.core.progress import SILENT, Progress
from caracal.core.state_replay import Replayer, ReplayError, first_difference
from caracal.services.backup import tables
from caracal.services.backup.archive_reader import OpenedMember, open_archive
from caracal.services.backup.envelope import locked
from caracal.services.backup.restore_checks import (
    read_small,
    require_archive,
    schema_version,
    table_for,
)
from caracal.services.backup.trust import (
    TrustedSigner,
    archive_pins,
    archive_signer,
    signed_tree_head,
)
from caracal.services.ledger_state import STATE_TABLES, StateCollector
from caracal.services.workspaces import WorkspaceManager
from caracal.store import ledger_rows


@dataclass
class ArchiveReport:
    ok: bool
    workspace: str = ""
    created_at: str = ""
    locked: bool = False
    secrets_included: bool = False
    tables: dict[str, int] = field(default_factory=dict)
    ledger_events: int = 0
    signed_by: str | None = None  # the fingerprint of the key that signed the manifest
    trust: str | None = None  # why that key is trusted
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "workspace": self.workspace,
            "created_at": self.created_at,
            "locked": self.locked,
            "secrets_included": self.secrets_included,
            "tables": self.tables,
            "ledger_events": self.ledger_events,
            "signed_by": self.signed_by,
            "trust": self.trust,
            "problem": self.problem,
        }


def verify_archive(
    path: Path,
    lock_key: str | None = None,
    *,
    manager: WorkspaceManager | None = None,
    trust_keys: list[str] | None = None,
    trust_archive_key: bool = False,
    progress: Progress = SILENT,
) -> ArchiveReport:
    """A stop through `progress` raises `Cancelled` (verifying writes nothing)."""
    require_archive(path, lock_key)
    report = ArchiveReport(ok=False, locked=locked(path))
    try:
        with open_archive(path, lock_key) as opened:
            manifest = opened.manifest
            schema_version(manifest)
            report.workspace = str(manifest.get("workspace"))
            report.created_at = str(manifest.get("created_at"))
            report.secrets_included = manifest.get("secrets") == "included"
            _check_contents(
                opened.manifest_bytes,
                opened.signature,
                manifest,
                opened.members,
                report,
                manager or WorkspaceManager(),
                trust_keys,
                trust_archive_key,
                progress,
            )
    except IntegrityError as exc:
        report.problem = exc.message
        return report
    report.ok = report.problem is None
    return report


@dataclass
class _Scan:
    signer: TrustedSigner | None = None
    walk: ChainWalk | None = None
    replayer: Replayer = field(default_factory=Replayer)
    state: StateCollector = field(default_factory=StateCollector)


def _check_contents(
    manifest_bytes: bytes,
    signature: bytes | None,
    manifest: dict[str, Any],
    members: Iterator[OpenedMember],
    report: ArchiveReport,
    manager: WorkspaceManager,
    trust_keys: list[str] | None,
    trust_archive_key: bool,
    progress: Progress = SILENT,
) -> None:
    small: dict[str, bytes] = {}
    scan = _Scan()

    def trust() -> TrustedSigner:
        if scan.signer is None:
            scan.signer = archive_signer(
                manifest,
                manifest_bytes,
                signature,
                archive_pins(small),
                manager,
                trust_keys=trust_keys,
                trust_archive_key=trust_archive_key,
            )
            report.signed_by, report.trust = scan.signer.fingerprint, scan.signer.trust
        return scan.signer

    for opened in members:
        if not opened.name.startswith("tables/"):
            small[opened.name] = read_small(opened)
            continue
        trust()  # every pin came before the first table: decide before the long read
        table = table_for(opened.name)
        declared = manifest["tables"].get(table.name, {}).get("rows")
        counter = progress.counter(f"Checking {table.name}", declared)
        count = _scan_table(opened, table, scan, counter)
        report.tables[table.name] = count
        if count != declared:
            raise IntegrityError(
                f"Table {table.name} has {count} rows; the manifest says {declared}."
            )
    trust()
    head = signed_tree_head(manifest, archive_pins(small))
    walk = scan.walk
    if walk is None:
        raise IntegrityError("The archive has no ledger.")
    report.ledger_events = walk.count
    if walk.failure is not None:
        raise IntegrityError(f"The archive's ledger is broken at {walk.failure.describe()}.")
    if (walk.expected_seq - 1, walk.prev_hash) != (head.size, head.last_hash):
        raise IntegrityError("The archive's ledger does not end where its signed head says.")
    if walk.tree.root().hex() != head.root:
        raise IntegrityError(
            "The archive's ledger does not match its signed tree head (history was rewritten)."
        )
    difference = first_difference(scan.replayer.state, scan.state.result())
    if difference is not None:
        raise IntegrityError(
            f"The archive's tables do not match its ledger: {difference.describe()}."
        )


def _scan_table(
    opened: OpenedMember, table: Any, scan: _Scan, on_rows: Callable[[int], None]
) -> int:
    """Count the dump's rows; walk the ledger (tree and state) and collect the authority rows
    on the way."""
    columns, batches = tables.read_rows(opened.stream, table)
    count = 0
    if table.name == "ledger_events":
        at = [columns.index(c) for c in ledger_rows.COLUMNS]
        scan.walk = ChainWalk(set(), state_sink=scan.replayer.apply)
        for batch in batches:
            try:
                scan.walk.feed([tuple(row[i] for i in at) for row in batch])
            except ReplayError as exc:
                raise IntegrityError(f"The archive's ledger cannot be replayed: {exc}.") from None
            count += len(batch)
            on_rows(count)
    elif table.name in STATE_TABLES:
        for batch in batches:
            for row in batch:
                scan.state.add(table.name, dict(zip(columns, row, strict=True)))
            count += len(batch)
            on_rows(count)
    else:
        for batch in batches:
            count += len(batch)
            on_rows(count)
    return count
