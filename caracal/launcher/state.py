"""The launcher's local state under `$CARACAL_HOME/stack/<project>/`: the secret files the
containers read, and the host I/O folder mounted at /caracal-host-io."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from caracal.home.paths import caracal_home

HOST_IO_IN_CONTAINER = "/caracal-host-io"
SECRET_NAMES = ("postgres_password", "redis_password", "master_key")


@dataclass(frozen=True)
class StackState:
    root: Path

    @classmethod
    def for_project(cls, project: str) -> StackState:
        return cls(caracal_home() / "stack" / project)

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def host_io(self) -> Path:
        return Path(os.environ.get("CARACAL_HOST_IO") or self.root.parent.parent / "host-io")

    def environment(self) -> dict[str, str]:
        """Variables the compose file is interpolated with, unless the operator set them."""
        return {"CARACAL_SECRETS_DIR": str(self.secrets_dir), "CARACAL_HOST_IO": str(self.host_io)}

    def prepare(self) -> None:
        """Create the folders and any missing secret (random, written atomically). The folder
        is private; the files inside are readable by the containers' own users."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root.parent, 0o700)
        self.secrets_dir.mkdir(exist_ok=True, mode=0o700)
        for name in SECRET_NAMES:
            path = self.secrets_dir / name
            if path.exists():
                continue
            value = secrets.token_hex(32) if name == "master_key" else secrets.token_urlsafe(24)
            tmp = path.with_name(f".{name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(value + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        self.host_io.mkdir(parents=True, exist_ok=True)
        # The containers run as uid 10001; the folder is reachable only through the private
        # $CARACAL_HOME, so letting that user write into it exposes nothing to other accounts.
        os.chmod(self.host_io, 0o777)  # noqa: S103

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def map_host_path(self, arg: str) -> str:
        """A host path inside the host I/O folder, as the containers see it."""
        if not arg or arg.startswith("-"):
            return arg
        candidate = Path(arg).expanduser()
        try:
            absolute = (
                candidate.resolve() if candidate.exists() or candidate.parent.exists() else None
            )
        except OSError:
            absolute = None
        if absolute is None:
            return arg
        try:
            inside = absolute.relative_to(self.host_io.resolve())
        except ValueError:
            return arg
        return (
            f"{HOST_IO_IN_CONTAINER}/{inside}".rstrip("/")
            if str(inside) != "."
            else HOST_IO_IN_CONTAINER
        )
