"""Where the stack's files come from: a source checkout, or the installed distribution.

A wheel carries the compose file, the runtime Dockerfile and the offline image builder as
package data (`caracal/launcher/files/`, mapped from the repository by the build). Installed
with pip, pipx or uv, Caracal stages them under `$CARACAL_HOME/stack/files/` (a writable build
context) and builds the runtime image from the installed distribution itself: no checkout,
and no image registry when the offline base images exist.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

import caracal
from caracal.core.errors import UnavailableError
from caracal.home.atomic import atomic_write_bytes
from caracal.home.paths import caracal_home

PACKAGE_FILES = Path(__file__).resolve().parent / "files"
# The files a stack needs, as the repository lays them out (and so the build context).
STACK_FILES = ("docker-compose.yml", "containers/runtime/Dockerfile", ".dockerignore")
OFFLINE_BUILDER = "containers/offline/build-images.sh"


def checkout_root() -> Path | None:
    """The source checkout Caracal runs from (an editable install, a `dev.py` venv), if any."""
    root = Path(caracal.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and (root / "docker-compose.yml").is_file():
        return root
    return None


def files_root() -> Path:
    """Where the stack's files are read from: the checkout, or the package data."""
    root = checkout_root()
    if root is not None:
        return root
    if not (PACKAGE_FILES / "docker-compose.yml").is_file():
        raise UnavailableError(
            "This installation of Caracal has no stack files (docker-compose.yml); reinstall it "
            "from a wheel or run it from a checkout."
        )
    return PACKAGE_FILES


def default_compose_file() -> Path:
    """The compose file `caracal up` uses unless told otherwise: the checkout's, or the
    packaged one staged in a writable build context."""
    root = checkout_root()
    if root is not None:
        return root / "docker-compose.yml"
    return stage_package_files() / "docker-compose.yml"


def stage_package_files(home: Path | None = None) -> Path:
    """Copy the packaged stack files to `$CARACAL_HOME/stack/files/` (kept in step with the
    installed version), the build context of the runtime image."""
    target = (home or caracal_home()) / "stack" / "files"
    for name in (*STACK_FILES, OFFLINE_BUILDER, "containers/offline/postgres-entrypoint.sh"):
        source = PACKAGE_FILES / name
        if not source.is_file():
            raise UnavailableError(
                f"This installation of Caracal lacks {name}; reinstall it from a wheel."
            )
        dest = target / name
        data = source.read_bytes()
        if not dest.is_file() or dest.read_bytes() != data:
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write_bytes(dest, data, mode=0o755 if name.endswith(".sh") else 0o644)
    return target


# ---- the caracal wheel, from a checkout or from the installation -------------------------------
def installation_digest() -> str:
    """What identifies the installed distribution's content: its RECORD (every file's hash)."""
    dist = metadata.distribution("caracal")
    record = dist.read_text("RECORD") or ""
    return hashlib.sha256(f"{dist.version}\n{record}".encode()).hexdigest()


def wheel_from_installation(target: Path) -> Path:
    """Rebuild the wheel of the installed distribution from its files (as pip recorded them),
    so that the image gets exactly the code that runs here."""
    dist = metadata.distribution("caracal")
    files = [f for f in (dist.files or []) if _belongs(str(f))]
    if not files:
        raise UnavailableError("The installed Caracal lists no files; reinstall it from a wheel.")
    info = f"caracal-{dist.version}.dist-info"
    path = target / f"caracal-{dist.version}-py3-none-any.whl"
    records: list[str] = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for entry in files:
            name = str(entry)
            if name.endswith("/RECORD"):
                continue
            data = Path(str(entry.locate())).read_bytes()
            arcname = f"{info}/{name.split('/', 1)[1]}" if name.startswith(info) else name
            wheel.writestr(arcname, data)
            records.append(f"{arcname},sha256={_b64(data)},{len(data)}")
        records.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return path


def _belongs(name: str) -> bool:
    """A file of the distribution proper: not caches, nor what the installer added."""
    if "__pycache__" in name or name.endswith(".pyc") or name.startswith(".."):
        return False
    installer_files = ("INSTALLER", "REQUESTED", "direct_url.json")
    return not (".dist-info/" in name and name.rsplit("/", 1)[1] in installer_files)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
