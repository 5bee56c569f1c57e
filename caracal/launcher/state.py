"""The launcher's local state under `$CARACAL_HOME/stack/<project>/`: the secret files the
containers read, and the host I/O folder mounted at /caracal-host-io.

Everything is private: folders 0700, files 0600. A container reads a secret as the user it
runs as, so each service gets its own copy of the secrets it names (`service-secrets/<service>/`),
owned by that user; the host I/O folder belongs to the user the Caracal containers run as
(CONTAINER_UID). Nothing is readable or writable by other accounts on the host."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from caracal.home.paths import caracal_home

HOST_IO_IN_CONTAINER = "/caracal-host-io"
SECRET_NAMES = ("postgres_password", "redis_password", "master_key")
CONTAINER_UID = 10001  # the runtime, flow and cli containers' user (containers/runtime/Dockerfile)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_private(path: Path, value: str) -> None:
    """Write a 0600 file atomically."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    def service_secrets_dir(self) -> Path:
        return self.root / "service-secrets"

    @property
    def home(self) -> Path:
        return self.root.parent.parent

    @property
    def host_io(self) -> Path:
        return Path(os.environ.get("CARACAL_HOST_IO") or self.root.parent.parent / "host-io")

    def environment(self) -> dict[str, str]:
        """Variables the compose file is interpolated with, unless the operator set them."""
        return {"CARACAL_SECRETS_DIR": str(self.secrets_dir), "CARACAL_HOST_IO": str(self.host_io)}

    def prepare(self) -> None:
        """Create the private folders and any missing secret (random, written atomically);
        tighten what an older version left readable."""
        for folder in (self.home, self.root.parent, self.root, self.secrets_dir):
            _private_dir(folder)
        _private_dir(self.service_secrets_dir)
        for name in SECRET_NAMES:
            path = self.secrets_dir / name
            if path.exists():
                os.chmod(path, 0o600)
                continue
            value = secrets.token_hex(32) if name == "master_key" else secrets.token_urlsafe(24)
            write_private(path, value + "\n")
        if not self.host_io.exists():
            self.host_io.mkdir(mode=0o700, parents=True)
        if self.host_io.stat().st_uid == os.geteuid():
            os.chmod(self.host_io, 0o700)  # then handed to the containers' user (Launcher)

    def service_secret(self, service: str, name: str) -> Path:
        """A private copy of one secret for one service (owner set by the launcher)."""
        folder = self.service_secrets_dir / service
        _private_dir(folder)
        path = folder / name
        value = (self.secrets_dir / name).read_text()
        if not path.exists() or _readable_text(path) != value:
            path.unlink(missing_ok=True)
            write_private(path, value)
        return path

    def remove(self) -> None:
        # Copies owned by container users are removable: the folders are ours.
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


def _readable_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # owned by a container's user, and we are not root
        return None
