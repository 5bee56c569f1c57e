"""Reading an archive, which trusts nothing.

Members must be regular files with names from a fixed list, the manifest comes first and
declares every member's size and SHA-256, no member may grow past what the manifest says, the
total is bounded, and the gzip header must be exactly the one Caracal writes (gzip's own CRC
does not cover the header, so a flipped header byte would otherwise pass unnoticed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from caracal.core.errors import IntegrityError, ValidationError
from caracal.services.backup.archive_format import (
    GZIP_HEADER,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE,
    MemberInfo,
    allowed_member,
    parse_manifest,
)
from caracal.services.backup.envelope import MAGIC, DecryptingReader

# A PAX or GNU long-name header is read whole by tarfile before anything else looks at it:
# ours are a few hundred bytes at most, so a bigger one is refused before it is read.
MAX_EXTENDED_HEADER = 64 * 1024
_EXTENDED = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
# What a member costs in the tar stream besides its data: its header, an extended header and
# padding; plus the end-of-archive blocks and one read-ahead of tarfile's stream buffer.
_MEMBER_OVERHEAD = 3 * 512 + MAX_EXTENDED_HEADER
_STREAM_SLACK = 4 * 10240


@dataclass
class OpenedMember:
    name: str
    stream: IO[bytes]


class _Bounded(io.RawIOBase):
    """A member's bytes, refused past the declared size, hashed as they are read."""

    def __init__(self, inner: IO[bytes], info: MemberInfo, reading: _Reading) -> None:
        super().__init__()
        self._inner, self._info, self._reading = inner, info, reading
        self._seen = 0
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except _READ_ERRORS as exc:
            raise self._reading.damaged(exc) from None
        self._seen += len(data)
        if self._seen > self._info.size:
            raise IntegrityError(
                f"Archive member {self._info.name} is larger than its manifest says; "
                "the archive is damaged or hostile."
            )
        self._hash.update(data)
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        while self.read(1024 * 1024):
            pass
        if self._seen != self._info.size or self._hash.hexdigest() != self._info.sha256:
            raise IntegrityError(
                f"Archive member {self._info.name} does not match its manifest (altered or damaged)."
            )


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses an oversized extended header (and sparse files, which Caracal never writes)
    before tarfile reads it whole."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_EXTENDED_HEADER:
            raise IntegrityError(
                f"The archive has a {self.size:,}-byte extended tar header (at most "
                f"{MAX_EXTENDED_HEADER:,} are read); refusing it."
            )
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise IntegrityError("The archive holds a sparse tar member; refusing it.")
        return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]


class _Capped(io.RawIOBase):
    """The decompressed tar stream, refused past `cap` bytes: before the manifest is read,
    room for a manifest and its signature; after, what the manifest declares."""

    def __init__(self, inner: io.BufferedIOBase, label: str) -> None:
        super().__init__()
        self._inner, self._label = inner, label
        self.seen = 0
        self.cap = MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES + 3 * _MEMBER_OVERHEAD + _STREAM_SLACK

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(min(len(buffer), self.cap - self.seen + 1))
        self.seen += len(data)
        if self.seen > self.cap:
            raise IntegrityError(
                f"{self._label} holds more than its manifest declares; refusing it."
            )
        buffer[: len(data)] = data
        return len(data)

    def bound_by(self, manifest: dict[str, Any]) -> None:
        members = manifest["members"]
        self.cap = (
            self.seen
            + sum(int(v["size"]) for v in members.values())
            + (len(members) + 2) * _MEMBER_OVERHEAD
            + _STREAM_SLACK
        )


def _check_tar_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise IntegrityError(f"Archive member {name!r} has an unsafe path; refusing the archive.")
    if member.issym() or member.islnk():
        raise IntegrityError(f"Archive member {name!r} is a link; refusing the archive.")
    if not member.isfile():
        raise IntegrityError(
            f"Archive member {name!r} is not a regular file; refusing the archive."
        )
    if not allowed_member(name):
        raise IntegrityError(f"Archive member {name!r} is not part of a Caracal backup.")


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


class _Reading:
    """Translates failures while reading the archive (and only those) into one clear error."""

    def __init__(self, label: str) -> None:
        self.label = label

    def damaged(self, exc: BaseException) -> IntegrityError:
        return IntegrityError(
            f"{self.label} is truncated or damaged ({type(exc).__name__}: {exc})."
        )


@dataclass(frozen=True)
class OpenedArchive:
    manifest: dict[str, Any]
    manifest_bytes: bytes  # exactly as stored: what the signature covers
    signature: bytes | None  # manifest.sig, when the archive has one
    members: Iterator[OpenedMember]


@contextmanager
def open_archive(path: Path, lock_key: str | None) -> Iterator[OpenedArchive]:
    """Yield the validated manifest, its signature and an iterator over the other members
    (each checked against the manifest once consumed; the gzip trailer, which covers every
    byte, once the iterator is exhausted). Every failure of the archive is an IntegrityError
    naming it; failures of the caller's own work pass through unchanged."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ValidationError(f"Cannot read archive {path}: {exc.strerror}.") from None
    reading = _Reading(path.name)
    with raw:
        is_locked = raw.read(len(MAGIC)) == MAGIC
        raw.seek(0)
        source: Any = raw
        if is_locked:
            if not lock_key:
                raise ValidationError(
                    f"{path.name} is locked; pass --lock-key-env VAR naming the variable that "
                    "holds its lock key."
                )
            source = io.BufferedReader(DecryptingReader(raw, lock_key), buffer_size=1024 * 1024)
        try:
            head = source.peek(len(GZIP_HEADER))[: len(GZIP_HEADER)] if is_locked else raw.read(10)
            if not is_locked:
                raw.seek(0)
            if head != GZIP_HEADER:
                raise IntegrityError(
                    f"{path.name} is not a Caracal backup archive (or its header is damaged)."
                )
            gz = gzip.GzipFile(fileobj=source, mode="rb")
            capped = _Capped(gz, path.name)
            tar = tarfile.open(  # noqa: SIM115
                fileobj=capped, mode="r|", tarinfo=_CheckedTarInfo
            )
            members = iter(tar)
            manifest, manifest_bytes, signature, pending = _leading_members(tar, members, path.name)
            capped.bound_by(manifest)
        except _READ_ERRORS as exc:
            raise reading.damaged(exc) from None

        def finish() -> None:
            """Read gzip to its end (its CRC and size trailer cover every byte, the manifest's
            included) and make sure nothing follows it."""
            try:
                while capped.read(1024 * 1024):
                    pass
                trailing = source.read(1) if is_locked else raw.read(1)
            except _READ_ERRORS as exc:
                raise reading.damaged(exc) from None
            if trailing:
                raise IntegrityError(f"{path.name} has data after its end; refusing it.")

        if pending is not None:  # no signature: the member read ahead comes first
            members = itertools.chain([pending], members)
        yield OpenedArchive(
            manifest, manifest_bytes, signature, _members(tar, members, manifest, reading, finish)
        )


def _leading_members(
    tar: tarfile.TarFile, members: Iterator[tarfile.TarInfo], label: str
) -> tuple[dict[str, Any], bytes, bytes | None, tarfile.TarInfo | None]:
    """The manifest (first) and its signature (second, when present); a member read ahead
    that is not the signature is handed back."""
    first = next(members, None)
    if first is None or first.name != MANIFEST or not first.isfile():
        raise IntegrityError(f"{label} does not start with a backup manifest.")
    if first.size > MAX_MANIFEST_BYTES:
        raise IntegrityError(f"{label} has an oversized manifest; refusing it.")
    handle = tar.extractfile(first)
    assert handle is not None
    manifest_bytes = handle.read()
    manifest = parse_manifest(manifest_bytes, label)
    second = next(members, None)
    if second is None or second.name != SIGNATURE:
        return manifest, manifest_bytes, None, second
    if not second.isfile() or second.size > MAX_SIGNATURE_BYTES:
        raise IntegrityError(f"{label} has a malformed manifest signature.")
    sig_handle = tar.extractfile(second)
    assert sig_handle is not None
    return manifest, manifest_bytes, sig_handle.read(), None


def _members(
    tar: tarfile.TarFile,
    members: Iterator[tarfile.TarInfo],
    manifest: dict[str, Any],
    reading: _Reading,
    finish: Callable[[], None],
) -> Iterator[OpenedMember]:
    declared: dict[str, dict[str, Any]] = manifest["members"]
    seen: set[str] = set()
    while True:
        try:
            member = next(members, None)
        except _READ_ERRORS as exc:
            raise reading.damaged(exc) from None
        if member is None:
            break
        _check_tar_member(member)
        info = declared.get(member.name)
        if info is None or member.name in seen:
            raise IntegrityError(f"Archive member {member.name!r} is not listed in its manifest.")
        if member.size != info["size"]:
            raise IntegrityError(f"Archive member {member.name} is not the size its manifest says.")
        seen.add(member.name)
        try:
            handle = tar.extractfile(member)
        except _READ_ERRORS as exc:
            raise reading.damaged(exc) from None
        assert handle is not None
        bounded = _Bounded(
            handle, MemberInfo(member.name, int(info["size"]), str(info["sha256"])), reading
        )
        yield OpenedMember(member.name, io.BufferedReader(bounded))
        bounded.finish()
    missing = sorted(set(declared) - seen)
    if missing:
        raise IntegrityError(f"The archive is missing member {missing[0]} (truncated?).")
    finish()
