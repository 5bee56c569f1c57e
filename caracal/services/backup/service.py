"""Create, list, verify and restore whole-workspace backups."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from caracal import __version__
from caracal.core.errors import (
    IntegrityError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from caracal.core.ledger import NewEvent
from caracal.core.progress import SILENT, Progress
from caracal.home import config as cfg
from caracal.home.atomic import fsync_dir, publish, refuse_existing
from caracal.services.backup import tables
from caracal.services.backup.archive_format import FORMAT, FORMAT_VERSION, MANIFEST, SIGNATURE
from caracal.services.backup.archive_writer import ArchiveWriter
from caracal.services.backup.envelope import check_lock_key, locked
from caracal.services.backup.trust import signature_document
from caracal.services.config_service import without_literal_secrets
from caracal.store import ledger_rows, meta, provider_rows
from caracal.store.migrations import current_version
from caracal.store.schema import secrets as secrets_table

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    locked: bool
    secrets_included: bool
    tables: dict[str, int]
    head_seq: int
    seconds: float
    signed_by: str  # the fingerprint of the ledger key that signed the manifest

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "locked": self.locked,
            "secrets_included": self.secrets_included,
            "tables": self.tables,
            "ledger_head_seq": self.head_seq,
            "signed_by": self.signed_by,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Member:
    name: str
    path: Path | None = None
    data: bytes | None = None
    size: int = 0
    sha256: str = ""


@dataclass
class _Plan:
    members: list[_Member] = field(default_factory=list)

    def add_bytes(self, name: str, data: bytes) -> None:
        import hashlib

        self.members.append(
            _Member(name, data=data, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        )

    def add_file(self, name: str, path: Path, size: int, sha256: str) -> None:
        self.members.append(_Member(name, path=path, size=size, sha256=sha256))


def default_name(workspace: str, *, lock: bool) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{workspace}-{stamp}.tar.gz" + (".locked" if lock else "")


class BackupService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    # ---- create ---------------------------------------------------------------------------
    def create(
        self,
        output: Path | None = None,
        lock_key: str | None = None,
        *,
        overwrite: bool = False,
        progress: Progress = SILENT,
    ) -> BackupResult:
        """Write one archive of the whole workspace; secrets only inside a locked archive.
        Stopped (`progress` cancelled, or ctrl+c), it leaves no archive and no temp file."""
        started = time.perf_counter()
        if lock_key is not None:
            check_lock_key(lock_key)
        app = self.app
        target = output or app.paths.backups / default_name(app.name, lock=lock_key is not None)
        if target.is_dir():
            raise ValidationError(f"{target} is a folder; give the name of a file to write.")
        if not overwrite:
            refuse_existing(target)
        if not target.parent.is_dir():
            raise NotFoundError(f"The folder {target.parent} does not exist.")
        app.ledger.checkpoint()  # the head goes to the history and to every witness now
        work = app.paths.cache / f"backup-{secrets.token_hex(4)}"
        work.mkdir(mode=0o700, parents=True)
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            plan, manifest, manifest_bytes, signature, fingerprint = self._plan(
                work, lock_key is not None, progress
            )
            with partial.open("xb") as sink:
                os.chmod(partial, 0o600)
                self._write(sink, lock_key, manifest_bytes, signature, plan, progress)
                sink.flush()
                os.fsync(sink.fileno())
            progress.check()  # the last moment a stop leaves nothing behind
            publish(partial, target, overwrite=overwrite)
            fsync_dir(target.parent)
        except OSError as exc:
            raise UnavailableError(
                f"Cannot write the backup ({exc.strerror or exc}); free some space or choose "
                "another --output."
            ) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
            partial.unlink(missing_ok=True)
        size = target.stat().st_size
        result = BackupResult(
            target,
            size,
            lock_key is not None,
            lock_key is not None,
            {name: info["rows"] for name, info in manifest["tables"].items()},
            manifest["ledger"]["head_seq"],
            time.perf_counter() - started,
            fingerprint,
        )
        app.store.write(
            lambda conn: app.ledger.record(
                conn,
                NewEvent(
                    "backup.created",
                    {
                        "file": target.name,
                        "size": size,
                        "locked": result.locked,
                        "secrets_included": result.secrets_included,
                        "ledger_head_seq": result.head_seq,
                        "signed_by": fingerprint,
                    },
                ),
            )
        )
        log.info("backup %s written (%d bytes, locked=%s)", target, size, result.locked)
        return result

    @staticmethod
    def _write(
        sink: Any,
        lock_key: str | None,
        manifest: bytes,
        signature: bytes,
        plan: _Plan,
        progress: Progress = SILENT,
    ) -> None:
        total = sum(m.size for m in plan.members)
        written = 0

        def wrote(n: int) -> None:
            nonlocal written
            written += n
            progress("Writing the archive", written, total, "bytes")

        writer = ArchiveWriter(sink, lock_key, wrote)
        try:
            writer.add_bytes(MANIFEST, manifest)
            writer.add_bytes(SIGNATURE, signature)
            for member in plan.members:
                if member.data is not None:
                    writer.add_bytes(member.name, member.data)
                    wrote(member.size)
                else:
                    assert member.path is not None
                    writer.add_file(member.name, member.path)
            writer.close()
        except BaseException:
            writer.abort()
            raise

    def _plan(
        self, work: Path, include_secrets: bool, progress: Progress = SILENT
    ) -> tuple[_Plan, dict[str, Any], bytes, bytes, str]:
        """The members, the manifest (as written) and its signature by the ledger key that
        signed the head it records, and that key's fingerprint."""
        app = self.app
        plan = _Plan()
        raw_config = app.paths.config.read_bytes()
        if not include_secrets:
            # Sealed values stay sealed (the master key is not in the archive); a literal
            # secret someone wrote into config.yaml by hand is left out.
            raw = cfg.read_raw(app.paths.config)
            clean = without_literal_secrets(raw)
            if clean != raw:
                raw_config = cfg.dump_raw(clean).encode("utf-8")
        plan.add_bytes("config.yaml", raw_config)
        if include_secrets:
            plan.add_bytes("config-secrets.json", json.dumps(self._config_secrets()).encode())
        if app.paths.flow_state.exists():
            plan.add_bytes("flow_state.json", app.paths.flow_state.read_bytes())
        for pin in sorted(app.paths.keys.glob("ledger-*.pub.pem")):
            plan.add_bytes(f"keys/{pin.name}", pin.read_bytes())
        counts: dict[str, dict[str, int]] = {}
        with app.store.read(snapshot=True) as conn:
            schema_version = current_version(conn)
            workspace_id = meta.get(conn, "workspace_id")
            head = ledger_rows.read_head(conn).signed(str(workspace_id))
            if head is None:
                raise IntegrityError("The ledger head is not signed; run `caracal ledger verify`.")
            private = app.ledger_heads.private_key(conn, head.kid)
            providers = [
                {**spec.to_dict(), "credential": "set" if ref else "none"}
                for spec, ref in provider_rows.load_all(conn)
            ]
            plan.add_bytes("providers.json", json.dumps(providers, indent=1).encode())
            if include_secrets:
                plan.add_bytes("secrets.jsonl", self._secrets_lines(conn))
            for table in tables.dumped_tables():
                path = work / f"{table.name}.jsonl"
                report = progress.counter(f"Dumping {table.name}", tables.count_rows(conn, table))
                report(0)
                rows, size, digest = tables.dump_table(conn, table, path, report)
                plan.add_file(f"tables/{table.name}.jsonl", path, size, digest)
                counts[table.name] = {"rows": rows}
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "workspace": app.name,
            "workspace_id": workspace_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "caracal_version": __version__,
            "schema_version": schema_version,
            "source_store": app.store.location.describe(),
            "secrets": "included" if include_secrets else "omitted",
            "tables": counts,
            "ledger": {
                "head_seq": head.size,
                "head_hash": head.last_hash,
                "tree_head": head.to_dict(),
            },
            "members": {m.name: {"size": m.size, "sha256": m.sha256} for m in plan.members},
        }
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
        fingerprint = app.ledger_heads.fingerprint(head.kid)
        if fingerprint is None:
            raise IntegrityError(f"Ledger key {head.kid} is not pinned in keys/.")
        signature = signature_document(private, head.kid, fingerprint, manifest_bytes)
        return plan, manifest, manifest_bytes, signature, fingerprint

    def _config_secrets(self) -> dict[str, str]:
        raw = cfg.read_raw(self.app.paths.config)
        return {
            key: self.app.cipher.decrypt_value(value)
            for key, value in cfg.flatten(raw).items()
            if cfg.is_encrypted_value(value)
        }

    def _secrets_lines(self, conn: Connection) -> bytes:
        lines = []
        for row in conn.execute(select(secrets_table).order_by(secrets_table.c.ref)):
            plaintext = self.app.cipher.open(bytes(row.ciphertext), row.ref)
            lines.append(
                json.dumps(
                    [row.ref, row.kind, base64.b64encode(plaintext).decode(), row.created_at]
                )
            )
        return ("\n".join(lines) + ("\n" if lines else "")).encode()

    # ---- list -----------------------------------------------------------------------------
    def listing(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.app.paths.backups.glob("*.tar.gz*")):
            if path.name.startswith(".") or not path.is_file():
                continue
            stat = path.stat()
            out.append(
                {
                    "file": path.name,
                    "path": str(path),
                    "size": stat.st_size,
                    "modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(
                        timespec="seconds"
                    ),
                    "locked": locked(path),
                }
            )
        return out
