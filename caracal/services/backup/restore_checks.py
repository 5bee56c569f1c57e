"""What a restore checks beyond the archive's container: before anything is written (the
archive exists and, when locked, comes with its key; its schema is one this Caracal reads;
its members are of a sane size and name known tables; shared with verify), and once the
staged store is loaded (its head and workspace id are the manifest's, its ledger verifies
and its tables match it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caracal.core.errors import IntegrityError, NotFoundError, ValidationError
from caracal.core.progress import SILENT, Progress
from caracal.core.tree_head import TreeHead
from caracal.services.backup import tables
from caracal.services.backup.archive_reader import OpenedMember
from caracal.services.backup.envelope import locked
from caracal.services.ledger_head import PinnedKeys
from caracal.services.ledger_state import compare_state
from caracal.services.ledger_verify import verify_ledger
from caracal.services.staging import Staging
from caracal.store import ledger_rows, meta
from caracal.store.migrations import LATEST

_SMALL_MEMBER_LIMIT = 64 * 1024 * 1024


def require_archive(path: Path, lock_key: str | None) -> None:
    if not path.is_file():
        raise NotFoundError(f"Archive {path} does not exist.")
    if locked(path) and not lock_key:
        raise ValidationError(
            f"{path.name} is locked; pass --lock-key-env VAR naming the variable that holds its key."
        )


def table_for(member: str) -> Any:
    wanted = member.removeprefix("tables/").removesuffix(".jsonl")
    for table in tables.dumped_tables():
        if table.name == wanted:
            return table
    raise IntegrityError(f"Archive member {member} is not a table this Caracal knows.")


def read_small(opened: OpenedMember) -> bytes:
    data = opened.stream.read(_SMALL_MEMBER_LIMIT + 1)
    if len(data) > _SMALL_MEMBER_LIMIT:
        raise IntegrityError(f"Archive member {opened.name} is unreasonably large; refusing it.")
    return data


def schema_version(manifest: dict[str, Any]) -> int:
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise IntegrityError("The archive's manifest has no valid schema version.")
    if version > LATEST:
        raise ValidationError(
            f"The archive comes from a newer Caracal (store schema {version}, this one reads up "
            f"to {LATEST}); upgrade Caracal to restore it."
        )
    return version


def check_loaded(store: Any, manifest: dict[str, Any], tree_head: TreeHead) -> None:
    with store.read() as conn:
        try:
            loaded = ledger_rows.read_head(conn).signed(str(manifest.get("workspace_id")))
        except (LookupError, ValueError, TypeError):  # no head row, or not numbers
            loaded = None
        if loaded != tree_head:
            raise IntegrityError("The archive's ledger head does not match its manifest.")
        # The ledger is verified under the manifest's id; the workspace uses the store's.
        if meta.get(conn, "workspace_id") != manifest.get("workspace_id"):
            raise IntegrityError("The archive's workspace id does not match its manifest.")


def verify_loaded(
    store: Any, staging: Staging, tree_head: TreeHead, progress: Progress = SILENT
) -> None:
    """The whole ledger against the signed head, and the tables against the ledger."""
    try:
        report = verify_ledger(
            store,
            PinnedKeys(staging.paths.keys),
            tree_head.workspace_id,
            [("archive's manifest", tree_head, None)],
            state_check=compare_state,
            progress=lambda done, total: progress("Verifying the ledger", done, total, "events"),
        )
    except (ValueError, TypeError, LookupError, OverflowError) as exc:
        # Rows of the wrong type (bytes for a number, ...) the verifier cannot read.
        raise IntegrityError(
            f"The archive's ledger does not verify: a value is malformed ({type(exc).__name__})."
        ) from None
    if not report.ok:
        raise IntegrityError(f"The archive's ledger does not verify: {report.problem}.")
