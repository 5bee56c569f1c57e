"""Restore an archive into a new workspace: completely and verified, or not at all.

The steps live beside this module: `restore_checks` (what is checked, before and after
loading), `restore_load` (the staged workspace's files and tables), `trust` (who signed the
archive). The workspace is built out of sight and revealed in one rename only once every
step has succeeded (`caracal.services.staging`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from caracal.core.errors import ConflictError, IntegrityError
from caracal.core.ledger import NewEvent
from caracal.core.names import check_workspace_name
from caracal.core.progress import SILENT, Progress
from caracal.core.tree_head import TreeHead
from caracal.services.backup.archive_reader import OpenedMember, open_archive
from caracal.services.backup.restore_checks import (
    check_loaded,
    read_small,
    require_archive,
    schema_version,
    verify_loaded,
)
from caracal.services.backup.restore_load import load_tables, prepared_config, write_workspace_files
from caracal.services.backup.trust import (
    TrustedSigner,
    archive_pins,
    archive_signer,
    signed_tree_head,
)
from caracal.services.ledger_head import LedgerHeads
from caracal.services.staging import Staging, staged_workspace
from caracal.services.workspaces import WorkspaceManager
from caracal.store import ledger_rows
from caracal.store.migrations import upgrade

log = logging.getLogger(__name__)
# The notice a restore without secrets ends with; front ends may word its next step their way.
NO_SECRETS_NOTICE = (
    "The archive holds no secrets: provider credentials are unset and principals must "
    "rotate their keys (`caracal principal rotate-key P`) before they can issue."
)


@dataclass(frozen=True)
class RestoreResult:
    name: str
    store: str
    tables: dict[str, int]
    secrets_included: bool
    seconds: float
    notices: tuple[str, ...] = ()
    signed_by: str = ""  # the fingerprint of the ledger key that signed the archive
    trust: str = ""  # why that key was trusted

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.name,
            "store": self.store,
            "tables": self.tables,
            "secrets_included": self.secrets_included,
            "signed_by": self.signed_by,
            "trust": self.trust,
            "seconds": round(self.seconds, 3),
            "notices": list(self.notices),
        }


def restore(
    manager: WorkspaceManager,
    archive: Path,
    name: str,
    *,
    lock_key: str | None = None,
    store_url: str | None = None,
    trust_keys: list[str] | None = None,
    trust_archive_key: bool = False,
    progress: Progress = SILENT,
) -> RestoreResult:
    """Create workspace `name` from `archive`: completely and verified, or not at all (a
    stop through `progress`, or ctrl+c, leaves the home as it was)."""
    started = time.perf_counter()
    check_workspace_name(name)
    if manager.exists(name):
        raise ConflictError(f"Workspace {name!r} already exists; restore under a new name.")
    require_archive(archive, lock_key)
    notices: list[str] = []
    with open_archive(archive, lock_key) as opened:
        manifest = opened.manifest
        version = schema_version(manifest)
        small: dict[str, bytes] = {}
        first_table: OpenedMember | None = None
        for member in opened.members:
            if member.name.startswith("tables/"):
                first_table = member
                break
            small[member.name] = read_small(member)
        if "config.yaml" not in small:
            raise IntegrityError("The archive has no config.yaml before its tables.")
        pins = archive_pins(small)
        signer = archive_signer(
            manifest,
            opened.manifest_bytes,
            opened.signature,
            pins,
            manager,
            trust_keys=trust_keys,
            trust_archive_key=trust_archive_key,
        )
        tree_head = signed_tree_head(manifest, pins)
        raw_config, config_secrets = prepared_config(small, notices)
        with staged_workspace(manager, name, store_url=store_url, raw_config=raw_config) as staging:
            write_workspace_files(staging, small, config_secrets)
            store = staging.open_store(migrate=False)
            upgrade(store, target=version)
            loaded = load_tables(
                staging, store, manifest, small, first_table, opened.members, name, progress
            )
            upgrade(store)
            check_loaded(store, manifest, tree_head)
            progress("Rebuilding the Merkle tree", 0, None, "events")
            store.write(ledger_rows.rebuild_nodes)
            verify_loaded(store, staging, tree_head, progress)
            progress.check()  # the last moment a stop leaves nothing behind
            _record_restore(staging, store, manifest, archive, signer)
            described = staging.location.describe()
    source = str(manifest.get("source_store", ""))
    if source.startswith("PostgreSQL") and not described.startswith("PostgreSQL"):
        notices.append(
            f"The archive came from {source}; this workspace uses the embedded SQLite store "
            "(restore with a PostgreSQL store URL, or CARACAL_STORE_URL, to keep PostgreSQL)."
        )
    secrets_included = manifest.get("secrets") == "included"
    if not secrets_included:
        notices.append(NO_SECRETS_NOTICE)
    log.info("workspace %s restored from %s (key %s)", name, archive, signer.trust)
    return RestoreResult(
        name,
        described,
        loaded,
        secrets_included,
        time.perf_counter() - started,
        tuple(notices),
        signer.fingerprint,
        signer.trust,
    )


def _record_restore(
    staging: Staging, store: Any, manifest: dict[str, Any], archive: Path, signer: TrustedSigner
) -> None:
    """The restore is the restored ledger's next event, under a head signed by the restored
    workspace's ledger key (a new key when the archive carried no secrets)."""
    workspace_id = str(manifest.get("workspace_id"))
    heads = LedgerHeads(
        workspace_id=lambda: workspace_id,
        keys_dir=staging.paths.keys,
        vault=lambda: staging.vault,
        witnesses=list,
    )
    event = NewEvent(
        "backup.restored",
        {
            "file": archive.name,
            "from_workspace": manifest.get("workspace"),
            "backup_created_at": manifest.get("created_at"),
            "secrets_included": manifest.get("secrets") == "included",
            "signed_by": signer.fingerprint,
            "trust": signer.trust,
        },
    )

    def work(conn: Connection) -> TreeHead:
        head = ledger_rows.read_head(conn, lock=True)
        heads.trust(head)
        ts_us = int(time.time() * 1_000_000)
        appended = ledger_rows.append(conn, [event], head=head, actor="caracal", ts_us=ts_us)
        return heads.sign(conn, appended, ts_us)

    heads.committed(store.write(work))
    heads.close()
