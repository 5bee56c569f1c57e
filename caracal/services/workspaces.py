"""Workspaces: create, list, switch and delete, atomically and safely across processes."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from caracal.core.errors import ConflictError, NotFoundError
from caracal.core.names import check_workspace_name
from caracal.home import config as cfg
from caracal.home.atomic import atomic_write_text, fsync_dir
from caracal.home.flow_state import DEFAULT_STATE, write_state
from caracal.home.lock import home_lock
from caracal.home.paths import HomePaths, WorkspacePaths
from caracal.store.engine import (
    StoreLocation,
    drop_store,
    open_store,
    resolve_location,
    schema_for_workspace,
)

if TYPE_CHECKING:
    from caracal.vault.master_key import MasterKey

log = logging.getLogger(__name__)
_CREATING = ".creating-"
_DELETING = ".deleting-"


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
            described = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
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
        check_workspace_name(name)
        url = store_url or self.env.get("CARACAL_STORE_URL") or None
        self.home.workspaces.mkdir(mode=0o700, parents=True, exist_ok=True)
        with home_lock(self.home.lock_file):
            self._sweep_leftovers()
            if self.exists(name) or self.home.workspace(name).root.exists():
                raise ConflictError(f"Workspace {name!r} already exists; choose another name.")
            tmp = self.home.workspaces / f"{_CREATING}{name}-{secrets.token_hex(4)}"
            location: StoreLocation | None = None
            store_created = False
            try:
                paths = WorkspacePaths(tmp)
                for directory in paths.directories():
                    directory.mkdir(mode=0o700, exist_ok=False)
                pg_schema = (
                    schema_for_workspace(name) if url and url.startswith("postgres") else None
                )
                raw = cfg.default_raw(name, url, pg_schema)
                config = cfg.validate_raw(raw, str(paths.config), self.env)
                location = resolve_location(config.store.url, config.store.pg_schema, tmp)
                cfg.write_raw(paths.config, raw)  # written first so a sweep can find the store
                workspace_id = str(uuid.uuid4())
                master = self._init_secrets(paths, workspace_id)
                generated_key = master.generated_file
                store = open_store(
                    location,
                    create=True,
                    pool_size=1,
                    busy_timeout_ms=config.store.busy_timeout_ms,
                )
                store_created = True
                try:
                    from caracal.services.bootstrap import initialise_store
                    from caracal.services.secrets import SecretVault
                    from caracal.vault.cipher import SecretCipher

                    initialise_store(
                        store, paths, workspace_id, name, SecretVault(SecretCipher(master.key))
                    )
                finally:
                    store.dispose()
                write_state(paths.flow_state, DEFAULT_STATE)
                os.rename(tmp, self.home.workspace(name).root)
                fsync_dir(self.home.workspaces)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                if store_created and location is not None and location.backend == "postgresql":
                    with contextlib.suppress(Exception):
                        drop_store(location)
                raise
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

    def delete(self, name: str) -> None:
        with home_lock(self.home.lock_file):
            self.check_deletable(name)
            paths = self.home.workspace(name)
            location = self._location_of(paths)
            drop_store(location)
            account = self._workspace_account(paths)
            trash = self.home.workspaces / f"{_DELETING}{name}-{secrets.token_hex(4)}"
            os.rename(paths.root, trash)
            fsync_dir(self.home.workspaces)
            shutil.rmtree(trash, ignore_errors=True)
            if account:
                from caracal.vault.master_key import forget_keyring_entry

                forget_keyring_entry(account)
        log.info("workspace %s deleted", name)

    # ---- helpers -------------------------------------------------------------------------
    def _location_of(self, paths: WorkspacePaths) -> StoreLocation:
        raw = cfg.read_raw(paths.config)
        config = cfg.validate_raw(raw, str(paths.config), self.env, decrypt=None)
        return resolve_location(config.store.url, config.store.pg_schema, paths.root)

    @staticmethod
    def _workspace_account(paths: WorkspacePaths) -> str | None:
        marker = paths.keys / "workspace.id"
        return marker.read_text().strip() if marker.exists() else None

    @staticmethod
    def _init_secrets(paths: WorkspacePaths, workspace_id: str) -> MasterKey:
        """Record the workspace id and settle its master key."""
        from caracal.vault.master_key import resolve_master_key

        atomic_write_text(paths.keys / "workspace.id", workspace_id + "\n")
        return resolve_master_key(paths.keys, workspace_id, create=True)

    def _sweep_leftovers(self) -> None:
        """Remove folders left by a create or delete that was killed halfway."""
        for entry in self.home.workspaces.iterdir():
            if not entry.name.startswith((_CREATING, _DELETING)):
                continue
            if entry.name.startswith(_CREATING):
                name = entry.name[len(_CREATING) :].rsplit("-", 1)[0]
                if not self.exists(name):
                    with contextlib.suppress(Exception):
                        drop_store(self._location_of(WorkspacePaths(entry)))
            shutil.rmtree(entry, ignore_errors=True)
