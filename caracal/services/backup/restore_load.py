"""Putting an archive's contents into a staged workspace: its config (values encrypted under
the source's master key re-encrypted under the new one, or dropped with a notice), Flow state
and ledger key pins, then its secrets and every table in one transaction."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from caracal.core.errors import IntegrityError, UnavailableError
from caracal.core.keys import load_public
from caracal.core.progress import SILENT, Progress
from caracal.home import config as cfg
from caracal.home.atomic import atomic_write_bytes
from caracal.services import ledger_keys
from caracal.services.backup import tables
from caracal.services.backup.archive_reader import OpenedMember
from caracal.services.backup.restore_checks import table_for
from caracal.services.staging import Staging
from caracal.store import meta
from caracal.store.engine import driver_errors


def prepared_config(
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


def write_workspace_files(
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
    for member, data in small.items():
        if member.startswith("keys/ledger-"):
            kid = member.removeprefix("keys/ledger-").removesuffix(".pub.pem")
            try:
                load_public(data.decode())
            except Exception:
                raise IntegrityError(f"Archive member {member} is not a public key.") from None
            atomic_write_bytes(ledger_keys.pin_path(staging.paths.keys, kid), data, mode=0o644)


def load_tables(
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
