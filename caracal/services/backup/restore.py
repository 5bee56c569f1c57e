"""Restore an archive into a new workspace: completely and verified, or not at all."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from caracal.core.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from caracal.core.ledger import NewEvent
from caracal.core.names import check_workspace_name
from caracal.core.progress import SILENT, Progress
from caracal.core.tree_head import TreeHead
from caracal.home import config as cfg
from caracal.home.atomic import atomic_write_bytes
from caracal.services import ledger_keys
from caracal.services.backup import tables
from caracal.services.backup.archive_reader import OpenedMember, open_archive
from caracal.services.backup.envelope import locked
from caracal.services.backup.trust import TrustedSigner, archive_signer, manifest_tree_head
from caracal.services.ledger_head import LedgerHeads, PinnedKeys
from caracal.services.ledger_state import compare_state
from caracal.services.ledger_verify import verify_ledger
from caracal.services.staging import Staging, staged_workspace
from caracal.services.workspaces import WorkspaceManager
from caracal.store import ledger_rows, meta
from caracal.store.engine import driver_errors
from caracal.store.migrations import LATEST, upgrade

log = logging.getLogger(__name__)
_SMALL_MEMBER_LIMIT = 64 * 1024 * 1024
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


# ---- restore -------------------------------------------------------------------------------
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
        raw_config, config_secrets = _prepared_config(small, notices)
        with staged_workspace(manager, name, store_url=store_url, raw_config=raw_config) as staging:
            _write_workspace_files(staging, small, config_secrets)
            store = staging.open_store(migrate=False)
            upgrade(store, target=version)
            loaded = _load_tables(
                staging, store, manifest, small, first_table, opened.members, name, progress
            )
            upgrade(store)
            _check_loaded(store, manifest, tree_head)
            progress("Rebuilding the Merkle tree", 0, None, "events")
            store.write(ledger_rows.rebuild_nodes)
            _verify_loaded(store, staging, tree_head, progress)
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


def archive_pins(small: dict[str, bytes]) -> dict[str, Any]:
    """The ledger public keys the archive carries, by kid (covered by the manifest's hashes,
    so trusted once the manifest's signature is)."""
    from caracal.core.keys import load_public

    pins: dict[str, Any] = {}
    for member, data in small.items():
        if member.startswith("keys/ledger-"):
            kid = member.removeprefix("keys/ledger-").removesuffix(".pub.pem")
            try:
                pins[kid] = load_public(data.decode())
            except Exception:
                raise IntegrityError(f"Archive member {member} is not a public key.") from None
    return pins


def signed_tree_head(manifest: dict[str, Any], pins: dict[str, Any]) -> TreeHead:
    """The tree head the backup was taken at, with a valid signature by an archived pin."""
    head = manifest_tree_head(manifest)
    key = pins.get(head.kid)
    if key is None or not head.verify(key):
        raise IntegrityError(
            "The archive's tree head is not signed by the workspace's ledger key (forged)."
        )
    if (head.size, head.last_hash) != (
        manifest["ledger"]["head_seq"],
        manifest["ledger"]["head_hash"],
    ):
        raise IntegrityError("The archive's tree head does not match its manifest.")
    return head


def _check_loaded(store: Any, manifest: dict[str, Any], tree_head: TreeHead) -> None:
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


def _verify_loaded(
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


def _prepared_config(
    small: dict[str, bytes], notices: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        raw = cfg.load_yaml(small["config.yaml"]) or {}
    except cfg.YAML_ERRORS:
        raise IntegrityError("The archive's config.yaml is not valid YAML.") from None
    if not isinstance(raw, dict):
        raise IntegrityError("The archive's config.yaml is not a mapping.")
    if not isinstance(raw.get("store") or {}, dict):  # the section the restore rewrites
        raise IntegrityError("The archive's config.yaml has a malformed store section.")
    ledger = raw.get("ledger")
    if isinstance(ledger, dict) and ledger.get("witnesses"):
        # They hold the source workspace's heads: the copy's ledger grows apart from it.
        raw = cfg.set_path(raw, "ledger.witnesses", [])
        notices.append(
            "The source's ledger witnesses were not carried over (they watch the source); "
            "name new ones in the restored workspace's config.yaml."
        )
    secrets: dict[str, str] = {}
    if "config-secrets.json" in small:
        try:
            secrets = {str(k): str(v) for k, v in json.loads(small["config-secrets.json"]).items()}
        except (ValueError, AttributeError, RecursionError):
            raise IntegrityError("The archive's config secrets are damaged.") from None
    # Encrypted values belong to the source's master key: re-encrypted after staging when the
    # archive carries them, dropped (with a notice) when it does not.
    for key, value in cfg.flatten(raw).items():
        if cfg.is_encrypted_value(value):
            raw = cfg.set_path(raw, key, None)
            if key not in secrets and not key.startswith("store."):
                notices.append(
                    f"Config value {key} was encrypted and the archive is not locked; it is unset."
                )
    return raw, secrets


def _write_workspace_files(
    staging: Staging, small: dict[str, bytes], config_secrets: dict[str, str]
) -> None:
    raw = staging.raw_config
    for key, plaintext in config_secrets.items():
        if key.startswith("store."):
            continue  # the store section is the target's own
        raw = cfg.set_path(raw, key, staging.vault.cipher.encrypt_value(plaintext))
    cfg.validate_raw(raw, str(staging.paths.config), {}, decrypt=staging.vault.cipher.decrypt_value)
    cfg.write_raw(staging.paths.config, raw)
    if "flow_state.json" in small:
        atomic_write_bytes(staging.paths.flow_state, small["flow_state.json"])
    from caracal.core.keys import load_public

    for member, data in small.items():
        if member.startswith("keys/ledger-"):
            kid = member.removeprefix("keys/ledger-").removesuffix(".pub.pem")
            try:
                load_public(data.decode())
            except Exception:
                raise IntegrityError(f"Archive member {member} is not a public key.") from None
            atomic_write_bytes(ledger_keys.pin_path(staging.paths.keys, kid), data, mode=0o644)


def _load_tables(
    staging: Staging,
    store: Any,
    manifest: dict[str, Any],
    small: dict[str, bytes],
    first_table: OpenedMember | None,
    members: Iterator[OpenedMember],
    name: str,
    progress: Progress = SILENT,
) -> dict[str, int]:
    expected = {k: int(v["rows"]) for k, v in manifest["tables"].items()}
    loaded: dict[str, int] = {}
    try:
        with store.transaction() as conn:
            if "secrets.jsonl" in small:
                _load_secrets(conn, staging, small["secrets.jsonl"])
            pending = [first_table] if first_table is not None else []
            for opened in _chain(pending, members):
                if not opened.name.startswith("tables/"):
                    raise IntegrityError(f"Archive member {opened.name} comes after the tables.")
                table = table_for(opened.name)
                loaded[table.name] = tables.load_table(
                    conn, table, opened.stream, _counting(progress, table.name, expected)
                )
                if loaded[table.name] != expected.get(table.name):
                    raise IntegrityError(
                        f"Table {table.name} has {loaded[table.name]} rows; the manifest says "
                        f"{expected.get(table.name)}."
                    )
            missing = sorted(set(expected) - set(loaded))
            if missing:
                raise IntegrityError(f"The archive has no dump of table {missing[0]}.")
            meta.put(conn, "workspace_name", name)
    except (DBAPIError, *driver_errors()) as exc:  # type: ignore[misc]
        orig: BaseException = (exc.orig or exc) if isinstance(exc, DBAPIError) else exc
        text = str(orig).strip()
        first = text.splitlines()[0] if text else type(orig).__name__
        if _is_disk_full(orig):
            raise UnavailableError(
                f"The store ran out of space while restoring: {first}."
            ) from None
        raise IntegrityError(f"The archive's data does not load cleanly: {first}.") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # Values the driver cannot bind: integers past 64 bits, lone surrogates, a list.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IntegrityError(f"The archive's data does not load cleanly: {first}.") from None
    return loaded


def _counting(
    progress: Progress, table: str, expected: dict[str, int]
) -> Callable[[list[str], list[tuple[Any, ...]]], None]:
    """Reports each batch of a table as it is about to load."""
    seen = 0

    def batch(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        nonlocal seen
        seen += len(rows)
        progress(f"Loading {table}", seen, expected.get(table))

    return batch


def _is_disk_full(error: BaseException) -> bool:
    return getattr(error, "sqlstate", None) == "53100" or "database or disk is full" in str(error)


def _chain(first: list[OpenedMember], rest: Iterator[OpenedMember]) -> Iterator[OpenedMember]:
    yield from first
    yield from rest


def _load_secrets(conn: Connection, staging: Staging, data: bytes) -> None:
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            ref, kind, plaintext, created = json.loads(line)
            value = base64.b64decode(plaintext, validate=True)
            created_at = float(created)
        except (ValueError, TypeError, RecursionError):
            raise IntegrityError(f"The archive's secrets are damaged at line {number}.") from None
        staging.vault.put(conn, str(ref), str(kind), value, created_at=created_at)


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
