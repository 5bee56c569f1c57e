"""Restore an archive into a new workspace, and verify archives without restoring them."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from caracal.core.ledger import ChainWalk, NewEvent
from caracal.core.names import check_workspace_name
from caracal.home import config as cfg
from caracal.home.atomic import atomic_write_bytes
from caracal.services import ledger_keys
from caracal.services.backup import tables
from caracal.services.backup.archive import OpenedMember, locked, open_archive
from caracal.services.ledger_verify import checkpoint_problem, verify_ledger
from caracal.services.staging import Staging, staged_workspace
from caracal.services.workspaces import WorkspaceManager
from caracal.store import ledger_rows, meta
from caracal.store.migrations import LATEST, upgrade

log = logging.getLogger(__name__)
_SMALL_MEMBER_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class RestoreResult:
    name: str
    store: str
    tables: dict[str, int]
    secrets_included: bool
    seconds: float
    notices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.name,
            "store": self.store,
            "tables": self.tables,
            "secrets_included": self.secrets_included,
            "seconds": round(self.seconds, 3),
            "notices": list(self.notices),
        }


@dataclass
class ArchiveReport:
    ok: bool
    workspace: str = ""
    created_at: str = ""
    locked: bool = False
    secrets_included: bool = False
    tables: dict[str, int] = field(default_factory=dict)
    ledger_events: int = 0
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
            "problem": self.problem,
        }


def _require_archive(path: Path, lock_key: str | None) -> None:
    if not path.is_file():
        raise NotFoundError(f"Archive {path} does not exist.")
    if locked(path) and not lock_key:
        raise ValidationError(
            f"{path.name} is locked; pass --lock-key-env VAR naming the variable that holds its key."
        )


def _table_for(member: str) -> Any:
    wanted = member.removeprefix("tables/").removesuffix(".jsonl")
    for table in tables.dumped_tables():
        if table.name == wanted:
            return table
    raise IntegrityError(f"Archive member {member} is not a table this Caracal knows.")


def _read_small(opened: OpenedMember) -> bytes:
    data = opened.stream.read(_SMALL_MEMBER_LIMIT + 1)
    if len(data) > _SMALL_MEMBER_LIMIT:
        raise IntegrityError(f"Archive member {opened.name} is unreasonably large; refusing it.")
    return data


def _schema_version(manifest: dict[str, Any]) -> int:
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
) -> RestoreResult:
    """Create workspace `name` from `archive`: completely and verified, or not at all."""
    started = time.perf_counter()
    check_workspace_name(name)
    if manager.exists(name):
        raise ConflictError(f"Workspace {name!r} already exists; restore under a new name.")
    _require_archive(archive, lock_key)
    notices: list[str] = []
    with open_archive(archive, lock_key) as (manifest, members):
        version = _schema_version(manifest)
        small: dict[str, bytes] = {}
        first_table: OpenedMember | None = None
        for opened in members:
            if opened.name.startswith("tables/"):
                first_table = opened
                break
            small[opened.name] = _read_small(opened)
        if "config.yaml" not in small:
            raise IntegrityError("The archive has no config.yaml before its tables.")
        raw_config, config_secrets = _prepared_config(small, notices)
        with staged_workspace(manager, name, store_url=store_url, raw_config=raw_config) as staging:
            _write_workspace_files(staging, small, config_secrets)
            store = staging.open_store(migrate=False)
            upgrade(store, target=version)
            loaded = _load_tables(staging, store, manifest, small, first_table, members, name)
            head = manifest["ledger"]
            with store.read() as conn:
                try:
                    loaded_head: tuple[int, str] | None = ledger_rows.head(conn)
                except (LookupError, ValueError, TypeError):  # no head row, or not numbers
                    loaded_head = None
                if loaded_head != (head["head_seq"], head["head_hash"]):
                    raise IntegrityError("The archive's ledger head does not match its manifest.")
                # The ledger is verified under the manifest's id; the workspace uses the store's.
                if meta.get(conn, "workspace_id") != manifest.get("workspace_id"):
                    raise IntegrityError("The archive's workspace id does not match its manifest.")
            try:
                report = verify_ledger(
                    store,
                    staging.paths.keys,
                    str(manifest.get("workspace_id")),
                    staging.config.ledger.checkpoint_every,
                )
            except (ValueError, TypeError, LookupError, OverflowError) as exc:
                # Rows of the wrong type (bytes for a number, ...) the verifier cannot read.
                raise IntegrityError(
                    f"The archive's ledger does not verify: a value is malformed "
                    f"({type(exc).__name__})."
                ) from None
            if not report.ok:
                raise IntegrityError(f"The archive's ledger does not verify: {report.problem}.")
            upgrade(store)
            _record_restore(store, manifest, archive)
            described = staging.location.describe()
    secrets_included = manifest.get("secrets") == "included"
    if not secrets_included:
        notices.append(
            "The archive holds no secrets: provider credentials are unset and principals must "
            "rotate their keys (`caracal principal rotate-key P`) before they can issue."
        )
    log.info("workspace %s restored from %s", name, archive)
    return RestoreResult(
        name, described, loaded, secrets_included, time.perf_counter() - started, tuple(notices)
    )


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
    secrets: dict[str, str] = {}
    if "config-secrets.json" in small:
        try:
            secrets = {str(k): str(v) for k, v in json.loads(small["config-secrets.json"]).items()}
        except (ValueError, AttributeError):
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
                table = _table_for(opened.name)
                loaded[table.name] = tables.load_table(conn, table, opened.stream)
                if loaded[table.name] != expected.get(table.name):
                    raise IntegrityError(
                        f"Table {table.name} has {loaded[table.name]} rows; the manifest says "
                        f"{expected.get(table.name)}."
                    )
            missing = sorted(set(expected) - set(loaded))
            if missing:
                raise IntegrityError(f"The archive has no dump of table {missing[0]}.")
            meta.put(conn, "workspace_name", name)
    except (DBAPIError, *_driver_errors()) as exc:  # type: ignore[misc]
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


def _driver_errors() -> tuple[type[Exception], ...]:
    """Rows are inserted on the driver's cursor, so its own exceptions arrive unwrapped."""
    import sqlite3

    import psycopg

    return (sqlite3.Error, psycopg.Error)


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
        except (ValueError, TypeError):
            raise IntegrityError(f"The archive's secrets are damaged at line {number}.") from None
        staging.vault.put(conn, str(ref), str(kind), value, created_at=created_at)


def _record_restore(store: Any, manifest: dict[str, Any], archive: Path) -> None:
    def work(conn: Connection) -> None:
        ledger_rows.append(
            conn,
            [
                NewEvent(
                    "backup.restored",
                    {
                        "file": archive.name,
                        "from_workspace": manifest.get("workspace"),
                        "backup_created_at": manifest.get("created_at"),
                        "secrets_included": manifest.get("secrets") == "included",
                    },
                )
            ],
            actor="caracal",
            ts_us=int(time.time() * 1_000_000),
            checkpoint_every=1_000_000_000,
            on_checkpoint=None,
        )

    store.write(work)


# ---- verify without restoring -------------------------------------------------------------
def verify_archive(path: Path, lock_key: str | None = None) -> ArchiveReport:
    """Check every hash, the manifest's counts and the ledger chain inside the archive."""
    _require_archive(path, lock_key)
    report = ArchiveReport(ok=False, locked=locked(path))
    try:
        with open_archive(path, lock_key) as (manifest, members):
            _schema_version(manifest)
            report.workspace = str(manifest.get("workspace"))
            report.created_at = str(manifest.get("created_at"))
            report.secrets_included = manifest.get("secrets") == "included"
            _check_contents(manifest, members, report)
    except IntegrityError as exc:
        report.problem = exc.message
        return report
    report.ok = report.problem is None
    return report


@dataclass
class _ArchiveLedger:
    pins: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[tuple[int, int, str, str, str]] = field(default_factory=list)
    walk: ChainWalk | None = None


def _check_contents(
    manifest: dict[str, Any], members: Iterator[OpenedMember], report: ArchiveReport
) -> None:
    ledger = _ArchiveLedger()
    for opened in members:
        if opened.name.startswith("keys/ledger-"):
            _read_pin(opened, ledger)
        elif opened.name.startswith("tables/"):
            table = _table_for(opened.name)
            count = _scan_table(opened, table, ledger)
            report.tables[table.name] = count
            declared = manifest["tables"].get(table.name, {}).get("rows")
            if count != declared:
                raise IntegrityError(
                    f"Table {table.name} has {count} rows; the manifest says {declared}."
                )
    walk = ledger.walk
    if walk is None:
        raise IntegrityError("The archive has no ledger.")
    report.ledger_events = walk.count
    if walk.failure is not None:
        raise IntegrityError(f"The archive's ledger is broken at {walk.failure.describe()}.")
    last = walk.expected_seq - 1
    head = manifest["ledger"]
    if (last, walk.prev_hash) != (head["head_seq"], head["head_hash"]):
        raise IntegrityError("The archive's ledger does not end where its manifest says.")
    ordered = sorted(ledger.checkpoints, key=lambda cp: cp[1])
    problem = checkpoint_problem(
        str(manifest.get("workspace_id")), last, walk.seen, ordered, ledger.pins, 10**9
    )
    if problem:
        raise IntegrityError(f"The archive's ledger checkpoints do not verify: {problem}.")


def _read_pin(opened: OpenedMember, ledger: _ArchiveLedger) -> None:
    from caracal.core.keys import load_public

    kid = opened.name.removeprefix("keys/ledger-").removesuffix(".pub.pem")
    data = _read_small(opened)
    try:
        ledger.pins[kid] = load_public(data.decode())
    except Exception:  # any parser complaint means the same: not a usable key
        raise IntegrityError(f"Archive member {opened.name} is not a public key.") from None


def _scan_table(opened: OpenedMember, table: Any, ledger: _ArchiveLedger) -> int:
    """Count the dump's rows; walk the ledger's chain and collect its checkpoints on the way."""
    columns, batches = tables.read_rows(opened.stream, table)
    count = 0
    if table.name == "ledger_checkpoints":
        at = [columns.index(c) for c in ("seq_from", "seq_to", "head_hash", "kid", "signature")]
        for batch in batches:
            for row in batch:
                seq_from, seq_to, *texts = (row[i] for i in at)
                # Sorted and compared as numbers and strings below: nothing else gets in.
                numbers = type(seq_from) is int and type(seq_to) is int
                if not (numbers and all(isinstance(t, str) for t in texts)):
                    raise IntegrityError("The archive's ledger has a malformed checkpoint row.")
                ledger.checkpoints.append((seq_from, seq_to, *texts))
            count += len(batch)
    elif table.name == "ledger_events":
        at = [columns.index(c) for c in ledger_rows.COLUMNS]
        ledger.walk = ChainWalk({cp[1] for cp in ledger.checkpoints})
        for batch in batches:
            ledger.walk.feed([tuple(row[i] for i in at) for row in batch])
            count += len(batch)
    else:
        count = sum(len(batch) for batch in batches)
    return count
