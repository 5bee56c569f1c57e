"""The locked-archive envelope: a memory-hard KDF (scrypt) and chunked AES-256-GCM.

Layout: MAGIC, a 4-byte header length, the header (JSON: KDF parameters, salt, nonce prefix,
a key check value), then chunks of `[4-byte length][ciphertext+tag]`. Each chunk's associated
data binds the header, the chunk's index and whether it is the last, so a reordered, dropped,
truncated or altered chunk fails authentication. Streaming both ways: memory stays flat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from caracal.core.canonical import strict_loads
from caracal.core.errors import IntegrityError, ValidationError

MAGIC = b"CARACAL-LOCKED-BACKUP\x00v1\n"
MIN_LOCK_KEY = 12
CHUNK = 1024 * 1024
_KDF = {"name": "scrypt", "n": 2**17, "r": 8, "p": 1}  # 128 MiB of memory per derivation
_MAX_HEADER = 4096
_LEN = struct.Struct(">I")


def check_lock_key(lock_key: str) -> None:
    if len(lock_key) < MIN_LOCK_KEY:
        raise ValidationError(f"The lock key must be at least {MIN_LOCK_KEY} characters long.")


def is_locked(path_or_head: bytes) -> bool:
    return path_or_head.startswith(MAGIC)


def locked(path: Path) -> bool:
    with path.open("rb") as handle:
        return is_locked(handle.read(len(MAGIC)))


# What a locked archive's header may ask of the reader, checked before anything is derived: at
# most twice the memory and work of what Caracal writes (n = 2^17, r = 8, p = 1: 128 MiB), so a
# hostile header cannot make a restore allocate gigabytes or spin for minutes.
KDF_LIMITS = {"n_min": 2**14, "n_max": 2**18, "r": 8, "p_max": 2, "memory_max": 256 * 2**20}


def check_kdf(params: Any) -> tuple[int, int, int]:
    """(n, r, p) from a locked archive's header, or IntegrityError."""
    if (
        not isinstance(params, dict)
        or set(params) != {"name", "n", "r", "p"}
        or params.get("name") != "scrypt"
        or not all(type(params.get(k)) is int for k in "nrp")
    ):
        raise IntegrityError("The locked archive names an unknown key derivation.")
    n, r, p = params["n"], params["r"], params["p"]
    memory = 128 * n * r
    if (
        n & (n - 1)
        or not KDF_LIMITS["n_min"] <= n <= KDF_LIMITS["n_max"]
        or r != KDF_LIMITS["r"]
        or not 1 <= p <= KDF_LIMITS["p_max"]
        or memory * p > KDF_LIMITS["memory_max"]
    ):
        raise IntegrityError(
            f"The locked archive asks for key derivation parameters (scrypt n={n}, r={r}, "
            f"p={p}) beyond what Caracal writes; refusing to derive the key."
        )
    return n, r, p


def _derive(lock_key: str, salt: bytes, params: Any) -> bytes:
    n, r, p = check_kdf(params)
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(lock_key.encode("utf-8"))


def _check_value(key: bytes) -> str:
    return hmac.new(key, b"caracal-backup-key-check", hashlib.sha256).hexdigest()[:32]


def _aad(header_digest: bytes, index: int, final: bool) -> bytes:
    return header_digest + struct.pack(">QB", index, 1 if final else 0)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


class EncryptingWriter(io.RawIOBase):
    """Write plaintext; ciphertext goes to `sink`. `close()` writes the final chunk."""

    def __init__(self, sink: BinaryIO, lock_key: str) -> None:
        super().__init__()
        check_lock_key(lock_key)
        salt, prefix = os.urandom(16), os.urandom(8)
        key = _derive(lock_key, salt, _KDF)
        header = json.dumps(
            {
                "kdf": _KDF,
                "salt": base64.b64encode(salt).decode(),
                "nonce_prefix": base64.b64encode(prefix).decode(),
                "chunk": CHUNK,
                "check": _check_value(key),
            },
            sort_keys=True,
        ).encode()
        sink.write(MAGIC + _LEN.pack(len(header)) + header)
        self._sink = sink
        self._aead = AESGCM(key)
        self._prefix = prefix
        self._digest = hashlib.sha256(MAGIC + header).digest()
        self._buffer = bytearray()
        self._index = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK:
            self._emit(bytes(self._buffer[:CHUNK]), final=False)
            del self._buffer[:CHUNK]
        return len(data)

    def _emit(self, plaintext: bytes, *, final: bool) -> None:
        sealed = self._aead.encrypt(
            _nonce(self._prefix, self._index), plaintext, _aad(self._digest, self._index, final)
        )
        self._sink.write(_LEN.pack(len(sealed)) + sealed)
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buffer), final=True)
            self._buffer.clear()
        super().close()


class DecryptingReader(io.RawIOBase):
    """Read plaintext from a locked archive; raise IntegrityError on any damage."""

    def __init__(self, source: BinaryIO, lock_key: str) -> None:
        super().__init__()
        if source.read(len(MAGIC)) != MAGIC:
            raise IntegrityError("This is not a locked Caracal archive.")
        raw_len = source.read(4)
        if len(raw_len) != 4 or _LEN.unpack(raw_len)[0] > _MAX_HEADER:
            raise IntegrityError("The locked archive's header is damaged.")
        header_bytes = source.read(_LEN.unpack(raw_len)[0])
        try:
            header = strict_loads(header_bytes)
            salt = base64.b64decode(header["salt"], validate=True)
            self._prefix = base64.b64decode(header["nonce_prefix"], validate=True)
            key = _derive(lock_key, salt, header["kdf"])
            check = header["check"]
        except (ValueError, KeyError, TypeError):
            raise IntegrityError("The locked archive's header is damaged.") from None
        if len(self._prefix) != 8 or not hmac.compare_digest(str(check), _check_value(key)):
            raise IntegrityError(
                "Wrong lock key for this archive (or its header is damaged); check the key."
            )
        self._source = source
        self._aead = AESGCM(key)
        self._digest = hashlib.sha256(MAGIC + header_bytes).digest()
        self._index = 0
        self._pending = b""
        self._finished = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        raw_len = self._source.read(4)
        if len(raw_len) < 4:
            raise IntegrityError("The locked archive is truncated.")
        (length,) = _LEN.unpack(raw_len)
        if length > CHUNK + 16:
            raise IntegrityError("The locked archive is damaged (a chunk is too long).")
        sealed = self._source.read(length)
        if len(sealed) != length:
            raise IntegrityError("The locked archive is truncated.")
        for final in (False, True):
            try:
                plain = self._aead.decrypt(
                    _nonce(self._prefix, self._index),
                    sealed,
                    _aad(self._digest, self._index, final),
                )
            except InvalidTag:
                continue
            self._index += 1
            if final:
                self._finished = True
                if self._source.read(1):
                    raise IntegrityError("The locked archive has data after its end.")
            return plain
        raise IntegrityError("The locked archive is damaged or was altered.")

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._finished:
            self._pending = self._next_chunk()
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count
