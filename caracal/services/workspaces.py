"""Workspaces: create, list, switch and delete, atomically and safely across processes."""

from __future__ import annotations

import builtins
import logging
import os
import secrets
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from caracal.core.errors import ConflictError, NotFoundError, ValidationError
from caracal.core.names import check_workspace_name
from caracal.home import config as cfg
from caracal.home.atomic import atomic_write_bytes, atomic_write_text, fsync_dir
from caracal.home.lock import home_lock
from caracal.home.paths import HomePaths, WorkspacePaths
from caracal.services.staging import ACCOUNT_FILE, DELETING, staged_workspace
from caracal.store.engine import StoreLocation, drop_store, resolve_location

log = logging.getLogger(__name__)

# What the backup written before a delete keeps only when it is locked.
UNLOCKED_BACKUP_LOSES = (
    "Without a lock key the backup is unlocked, so it leaves out every principal's signing key "
    "and every provider credential: after a restore each principal needs a new key and each "
    "provider its credentials again."
)


@dataclass(frozen=True)
class WorkspaceInfo:
    name: str
    path: Path
    active: bool
    store: str
    notices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "active": self.active,
            "store": self.store,
        }


class WorkspaceManager:
    """Everything about CARACAL_HOME that is not inside one workspace's store."""

    def __init__(self, home: HomePaths | None = None, env: dict[str, str] | None = None) -> None:
        self.home = home or HomePaths.from_env()
        self.env = dict(os.environ if env is None else env)

    # ---- queries -------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.home.workspaces.is_dir():
            return []
        return sorted(
            p.name
            for p in self.home.workspaces.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "config.yaml").exists()
        )

    def exists(self, name: str) -> bool:
        return (self.home.workspace(name).config).exists()

    def active_name(self) -> str | None:
        try:
            name = self.home.active_file.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def list(self) -> list[WorkspaceInfo]:
        active = self.active_name()
        return [self.info(name, active=name == active) for name in self.names()]

    def info(self, name: str, *, active: bool | None = None) -> WorkspaceInfo:
        paths = self.paths(name)
        try:
            raw = cfg.read_raw(paths.config)
            store = raw.get("store", {}) if isinstance(raw.get("store"), dict) else {}
            url = str(store.get("url") or "sqlite")
            # A sealed URL is PostgreSQL's (an SQLite file has no password): its schema says so.
            postgres = url.startswith("postgresql") or bool(store.get("pg_schema"))
            described = "PostgreSQL" if postgres else "SQLite"
        except Exception:
            described = "unknown (config unreadable)"
        is_active = (self.active_name() == name) if active is None else active
        return WorkspaceInfo(name, paths.root, is_active, described)

    def paths(self, name: str) -> WorkspacePaths:
        check_workspace_name(name)
        return self.home.workspace(name)

    def resolve(self, override: str | None = None) -> str:
        """The workspace a command acts on: --workspace, then CARACAL_WORKSPACE, then active."""
        name = override or self.env.get("CARACAL_WORKSPACE") or self.active_name()
        if not name:
            raise NotFoundError(
                "No active workspace; create one with `caracal workspace create NAME`."
            )
        check_workspace_name(name)
        if not self.exists(name):
            raise NotFoundError(f"Workspace {name!r} does not exist; see `caracal workspace list`.")
        return name

    # ---- changes -------------------------------------------------------------------------
    def use(self, name: str) -> None:
        check_workspace_name(name)
        if not self.exists(name):
            raise NotFoundError(f"Workspace {name!r} does not exist; see `caracal workspace list`.")
        atomic_write_text(self.home.active_file, name + "\n")

    def create(
        self, name: str, *, store_url: str | None = None, activate: bool | None = None
    ) -> WorkspaceInfo:
        """Create a workspace completely or not at all. Concurrent creators of one name: one
        wins, the others get a ConflictError."""
        from caracal.services.bootstrap import initialise_store

        with staged_workspace(self, name, store_url=store_url) as staging:
            store = staging.open_store()
            initialise_store(store, staging.paths, str(uuid.uuid4()), name, staging.vault)
            generated_key = staging.master.generated_file
        if activate or (activate is None and not self.active_name()):
            self.use(name)
        log.info("workspace %s created", name)
        info = self.info(name)
        if generated_key:
            key_file = self.home.workspace(name).keys / "master.key"
            notice = (
                f"No OS keyring is available, so the master key is stored in {key_file} "
                "(mode 0600). Keep it safe, or set CARACAL_MASTER_KEY: without the key the "
                "workspace secrets cannot be read."
            )
            info = WorkspaceInfo(info.name, info.path, info.active, info.store, (notice,))
        return info

    def check_deletable(self, name: str) -> None:
        check_workspace_name(name)
        if not self.exists(name):
            raise NotFoundError(f"Workspace {name!r} does not exist; see `caracal workspace list`.")
        if self.active_name() == name:
            raise ConflictError(
                f"Workspace {name!r} is active; switch first with `caracal workspace use OTHER`."
            )

    def delete(
        self, name: str, *, backup_first: bool = True, lock_key: str | None = None
    ) -> Path | None:
        """Delete a workspace and its store. Unless told otherwise, first write a backup to
        `$CARACAL_HOME/backups/` (outside the workspace); if that fails, nothing is deleted.

        With a lock key the backup is locked and keeps the signing keys and provider
        credentials; without one it leaves them out (UNLOCKED_BACKUP_LOSES)."""
        self.check_deletable(name)
        if lock_key is not None:
            from caracal.services.backup.envelope import check_lock_key

            if not backup_first:
                raise ValidationError("A lock key locks the backup, and no backup is written.")
            check_lock_key(lock_key)  # a bad key stops here, before anything is written
        archive = self._safety_backup(name, lock_key) if backup_first else None
        with home_lock(self.home.lock_file):
            self.check_deletable(name)
            paths = self.home.workspace(name)
            location = self.location_of(paths)
            self._retire_keys(paths)
            drop_store(location)
            account = self._workspace_account(paths)
            trash = self.home.workspaces / f"{DELETING}{name}-{secrets.token_hex(4)}"
            os.rename(paths.root, trash)
            fsync_dir(self.home.workspaces)
            shutil.rmtree(trash, ignore_errors=True)
            if account:
                from caracal.vault.master_key import forget_keyring_entry

                forget_keyring_entry(account)
        log.info("workspace %s deleted", name)
        return archive

    def _safety_backup(self, name: str, lock_key: str | None = None) -> Path:
        from caracal.services.backup.service import default_name
        from caracal.services.facade import Caracal

        folder = self.home.root / "backups"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = folder / default_name(name, lock=lock_key is not None)
        with Caracal(self, name) as app:
            return app.backups.create(target, lock_key=lock_key).path

    # ---- helpers -------------------------------------------------------------------------
    def _retire_keys(self, paths: WorkspacePaths) -> None:
        """Keep the workspace's pinned ledger keys and last head, so its backups stay
        trusted here after it is gone."""
        keep = [
            p for p in paths.keys.glob("ledger-*") if p.suffix in (".pem", ".json") and p.is_file()
        ]
        if not keep:
            return
        folder = self.home.retired_keys / f"{paths.name}-{secrets.token_hex(4)}"
        folder.mkdir(mode=0o700, parents=True)
        for path in keep:
            atomic_write_bytes(folder / path.name, path.read_bytes(), mode=0o600)

    def retired_key_folders(self) -> builtins.list[tuple[str, Path]]:
        """(workspace name, folder) of every deleted workspace whose keys are kept."""
        root = self.home.retired_keys
        if not root.is_dir():
            return []
        return [(p.name.rsplit("-", 1)[0], p) for p in sorted(root.iterdir()) if p.is_dir()]

    def location_of(self, paths: WorkspacePaths) -> StoreLocation:
        raw = cfg.read_raw(paths.config)
        decrypt = None
        if cfg.is_encrypted_value(cfg.flatten(raw).get("store.url")):
            # A sealed store URL (it holds a password): opened with the workspace's master key.
            from caracal.vault.cipher import SecretCipher
            from caracal.vault.master_key import resolve_master_key

            account = (paths.keys / ACCOUNT_FILE).read_text().strip()
            key = resolve_master_key(paths.keys, account, create=False).key
            decrypt = SecretCipher(key).decrypt_value
        config = cfg.validate_raw(raw, str(paths.config), self.env, decrypt=decrypt)
        return resolve_location(config.store.url, config.store.pg_schema, paths.root)

    @staticmethod
    def _workspace_account(paths: WorkspacePaths) -> str | None:
        marker = paths.keys / ACCOUNT_FILE
        return marker.read_text().strip() if marker.exists() else None
