"""Writing an archive: members streamed in order into tar, gzip and (with a lock key) the
lock envelope, so memory stays flat however large the tables."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

from caracal.services.backup.archive_format import GZIP_LEVEL
from caracal.services.backup.envelope import EncryptingWriter


class ArchiveWriter:
    """Members are added from files (with known size and hash) in the order given."""

    def __init__(
        self,
        sink: BinaryIO,
        lock_key: str | None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """`on_bytes(n)` as each piece of a file member goes in."""
        self._on_bytes = on_bytes
        self._crypt = EncryptingWriter(sink, lock_key) if lock_key else None
        target: Any = self._crypt if self._crypt is not None else sink
        # Closed in close(), in order: tar, then gzip, then the envelope.
        self._gzip = gzip.GzipFile(
            fileobj=target, mode="wb", compresslevel=GZIP_LEVEL, mtime=0, filename=""
        )
        self._tar = tarfile.open(fileobj=self._gzip, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def add_bytes(self, name: str, data: bytes) -> None:
        self._add(name, len(data), io.BytesIO(data))

    def add_file(self, name: str, path: Path) -> None:
        with path.open("rb") as handle:
            on_bytes = self._on_bytes
            source: Any = handle if on_bytes is None else _Counting(handle, on_bytes)
            self._add(name, path.stat().st_size, source)

    def _add(self, name: str, size: int, handle: IO[bytes]) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, 0
        self._tar.addfile(info, handle)

    def close(self) -> None:
        self._tar.close()
        self._gzip.close()
        if self._crypt is not None:
            self._crypt.close()

    def abort(self) -> None:
        """After a failure: release everything without writing more (the caller deletes the
        partial file), so no half-closed stream complains when it is collected."""
        for stream in (self._tar.fileobj, self._tar, self._gzip, self._crypt):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.closed = True  # type: ignore[misc, union-attr]


class _Counting(io.RawIOBase):
    """A file read through, telling how many bytes each read returned."""

    def __init__(self, inner: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        super().__init__()
        self._inner, self._on_bytes = inner, on_bytes

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self._on_bytes(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
