"""Where things live under CARACAL_HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STORE_FILE = "store.db"


def caracal_home() -> Path:
    configured = os.environ.get("CARACAL_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".caracal"


@dataclass(frozen=True)
class WorkspacePaths:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "caracal.log"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def flow_state(self) -> Path:
        return self.root / "flow_state.json"

    @property
    def store_file(self) -> Path:
        return self.root / STORE_FILE

    def directories(self) -> tuple[Path, ...]:
        return (self.root, self.logs, self.backups, self.cache, self.keys)


@dataclass(frozen=True)
class HomePaths:
    root: Path

    @classmethod
    def from_env(cls) -> HomePaths:
        return cls(caracal_home())

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    @property
    def active_file(self) -> Path:
        return self.root / "active_workspace"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def retired_keys(self) -> Path:
        """The ledger public keys (and last head) of deleted workspaces, one folder each: a
        backup of a deleted workspace still restores without --trust-key."""
        return self.root / "retired-keys"

    def workspace(self, name: str) -> WorkspacePaths:
        return WorkspacePaths(self.workspaces / name)
