"""Building a workspace out of sight, then revealing it in one rename.

Creation and restore both stage the new workspace in a hidden folder under the home lock;
only a complete workspace is renamed into place. On any failure the folder (and a PostgreSQL
schema, if one was made) is removed, so a name is either fully there or not there at all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from caracal.core.errors import ConflictError
from caracal.core.names import check_workspace_name
from caracal.home import config as cfg
from caracal.home.atomic import atomic_write_text, fsync_dir
from caracal.home.config_model import WorkspaceConfig
from caracal.home.flow_state import DEFAULT_STATE, write_state
from caracal.home.lock import home_lock
from caracal.home.paths import WorkspacePaths
from caracal.services.config_service import seal_literal_secrets
from caracal.services.secrets import SecretVault
from caracal.store.engine import (
    Store,
    StoreLocation,
    drop_store,
    open_store,
    resolve_location,
    schema_for_workspace,
)
from caracal.vault.cipher import SecretCipher
from caracal.vault.master_key import MasterKey, resolve_master_key

if TYPE_CHECKING:
    from caracal.services.workspaces import WorkspaceManager

CREATING = ".creating-"
DELETING = ".deleting-"
ACCOUNT_FILE = "master.account"  # names this workspace's master key in the OS keyring


@dataclass
class Staging:
    name: str
    paths: WorkspacePaths
    raw_config: dict[str, Any]
    config: WorkspaceConfig
    location: StoreLocation
    master: MasterKey
    vault: SecretVault
    stores: list[Store] = field(default_factory=list)

    def open_store(self, *, migrate: bool = True) -> Store:
        store = open_store(
            self.location,
            create=not self.stores,
            pool_size=1,
            busy_timeout_ms=self.config.store.busy_timeout_ms,
            migrate=migrate,
        )
        self.stores.append(store)
        return store


def _store_section(raw: dict[str, Any], name: str, url: str | None) -> dict[str, Any]:
    """The config for a new workspace: its own name, and a store of the chosen backend."""
    out = dict(raw)
    out["workspace"] = name
    store = dict(out.get("store") or {})
    if url:
        store["url"] = url
        store["pg_schema"] = schema_for_workspace(name) if url.startswith("postgres") else None
    else:
        store["url"] = "sqlite:///store.db"
        store["pg_schema"] = None
    out["store"] = store
    return out


@contextlib.contextmanager
def staged_workspace(
    manager: WorkspaceManager,
    name: str,
    *,
    store_url: str | None = None,
    raw_config: dict[str, Any] | None = None,
) -> Iterator[Staging]:
    check_workspace_name(name)
    url = store_url or manager.env.get("CARACAL_STORE_URL") or None
    home = manager.home
    home.workspaces.mkdir(mode=0o700, parents=True, exist_ok=True)
    with home_lock(home.lock_file):
        sweep_leftovers(manager)
        if manager.exists(name) or home.workspace(name).root.exists():
            raise ConflictError(f"Workspace {name!r} already exists; choose another name.")
        tmp = home.workspaces / f"{CREATING}{name}-{secrets.token_hex(4)}"
        staging: Staging | None = None
        try:
            paths = WorkspacePaths(tmp)
            for directory in paths.directories():
                directory.mkdir(mode=0o700, exist_ok=False)
            base = raw_config if raw_config is not None else cfg.default_raw(name, None, None)
            raw = _store_section(base, name, url)
            config = cfg.validate_raw(raw, str(paths.config), manager.env)
            location = resolve_location(config.store.url, config.store.pg_schema, tmp)
            account = str(uuid.uuid4())
            atomic_write_text(paths.keys / ACCOUNT_FILE, account + "\n")
            master = resolve_master_key(paths.keys, account, create=True)
            vault = SecretVault(SecretCipher(master.key))
            # A password in the store URL (or any secret setting) is sealed before the file is
            # written: config.yaml, and every unlocked backup of it, never holds it in clear.
            raw = seal_literal_secrets(raw, vault.cipher.encrypt_value)
            cfg.write_raw(paths.config, raw)  # written before the store, so a sweep finds it
            staging = Staging(name, paths, raw, config, location, master, vault)
            yield staging
            for store in staging.stores:
                store.dispose()
            if not paths.flow_state.exists():
                write_state(paths.flow_state, DEFAULT_STATE)
            os.rename(tmp, home.workspace(name).root)
            fsync_dir(home.workspaces)
        except BaseException:
            if staging is not None:
                for store in staging.stores:
                    store.dispose()
            shutil.rmtree(tmp, ignore_errors=True)
            if staging is not None and staging.stores and staging.location.backend == "postgresql":
                with contextlib.suppress(Exception):
                    drop_store(staging.location)
            raise


def sweep_leftovers(manager: WorkspaceManager) -> None:
    """Remove folders left by a create, restore or delete that was killed halfway (call with
    the home lock held)."""
    for entry in manager.home.workspaces.iterdir():
        if not entry.name.startswith((CREATING, DELETING)):
            continue
        if entry.name.startswith(CREATING):
            name = entry.name[len(CREATING) :].rsplit("-", 1)[0]
            if not manager.exists(name):
                with contextlib.suppress(Exception):
                    drop_store(manager.location_of(WorkspacePaths(entry)))
        shutil.rmtree(entry, ignore_errors=True)
