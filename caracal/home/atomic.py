"""Crash-safe file writes: write a sibling temp file, fsync, rename over the target."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from caracal.core.errors import ConflictError, ValidationError


def atomic_write_bytes(
    path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True
) -> None:
    with atomic_writer(path, mode, overwrite=overwrite) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str, mode: int = 0o600, *, overwrite: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode, overwrite=overwrite)


# What link() answers where a file system has no hard links.
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS, errno.EMLINK}
)


def already_exists(path: Path) -> ConflictError:
    return ConflictError(f"{path} already exists; nothing was written.", hint="force")


def refuse_existing(path: Path) -> None:
    """Before the work of writing a file the user named: it must not exist yet."""
    if path.exists() or path.is_symlink():
        raise already_exists(path)


def publish(tmp: Path, path: Path, *, overwrite: bool) -> None:
    """Move a finished temp file to `path`: replacing what is there only with `overwrite`,
    else failing if anything appeared there meanwhile (a hard link cannot replace a file)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise already_exists(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # A file system without hard links: claim the name first, then replace the claim.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise already_exists(path) from None
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return
    os.unlink(tmp)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o600, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Stream into a temp file; it replaces `path` only if the block finishes (and, without
    `overwrite`, only if nothing is there: files a user names are never silently replaced)."""
    if not path.name or path.is_dir():  # `--output .` or an existing folder
        raise ValidationError(f"{path} is a folder; give the name of a file to write.")
    if not overwrite:
        refuse_existing(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path, overwrite=overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def output_writer(path: Path, mode: int = 0o600, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Where a user names a file to write: a FIFO or a character device (`/dev/null`, a
    terminal) is written directly, never replaced by a regular file; a symbolic link, a block
    device or a socket is refused (a link is not followed into replacing what it names);
    anything else is written atomically as `atomic_writer` does."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise ValidationError(f"Cannot write {path}: {exc.strerror}.") from None
    if found is not None and stat.S_ISLNK(found.st_mode):
        raise ValidationError(
            f"{path} is a symbolic link; give the path of the file itself (it is not followed)."
        )
    if found is not None and (stat.S_ISFIFO(found.st_mode) or stat.S_ISCHR(found.st_mode)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY)
        except OSError as exc:
            raise ValidationError(f"Cannot write {path}: {exc.strerror}.") from None
        with os.fdopen(fd, "wb") as handle:
            yield handle
        return
    if found is not None and not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
        raise ValidationError(
            f"{path} is a device or socket, not a file; give the name of a file to write."
        )
    with atomic_writer(path, mode, overwrite=overwrite) as handle:
        yield handle
