"""Where the workspace master key comes from, in a fixed order.

1. `CARACAL_MASTER_KEY` (base64 or hex of 32 bytes)
2. `CARACAL_MASTER_KEY_FILE` (a file holding the same; container secrets)
3. the OS keyring, when a real backend exists (bounded by a timeout, never prompting)
4. a generated key file `keys/master.key` (mode 0600), announced once

A check value written on first use detects a different key later, so a wrong key is a clear
error instead of silent garbage; the source is remembered so a keyring outage never silently
switches to a new key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from caracal.core.errors import ConfigError, UnavailableError

log = logging.getLogger(__name__)

KEYRING_SERVICE = "caracal"
KEYRING_TIMEOUT_S = 3.0


class MasterKeySource(StrEnum):
    ENV = "env"
    FILE_ENV = "file-env"
    KEYRING = "keyring"
    KEY_FILE = "key-file"


@dataclass(frozen=True)
class MasterKey:
    key: bytes
    source: MasterKeySource
    generated_file: bool = False  # a new key file was written: the caller should say so once


def decode_key(text: str, origin: str) -> bytes:
    text = text.strip()
    for decoder in (bytes.fromhex, _b64):
        try:
            raw = decoder(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    raise ConfigError(
        f"{origin} must hold a 32-byte key as 64 hex characters or base64; "
        'generate one with `python3 -c "import secrets; print(secrets.token_hex(32))"`.'
    )


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def check_value(key: bytes) -> str:
    return hmac.new(key, b"caracal-master-key-check", hashlib.sha256).hexdigest()[:32]


def _keyring_backend() -> object | None:
    if os.environ.get("CARACAL_KEYRING", "").lower() in ("0", "off", "false", "no"):
        return None
    try:
        import keyring
        from keyring.backends import chainer, fail
    except Exception:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    if type(backend).__module__.startswith(("keyring.backends.null", "keyrings.alt")):
        return None
    return backend


def _with_timeout(func: Callable[..., object], *args: object) -> object:
    result: list[object] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(func(*args))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(KEYRING_TIMEOUT_S)
    if thread.is_alive():
        raise TimeoutError("keyring did not answer in time")
    if error:
        raise error[0]
    return result[0] if result else None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def resolve_master_key(keys_dir: Path, account: str, *, create: bool = True) -> MasterKey:
    """Find (or, for a new workspace, create) the master key for the workspace whose `keys/` is
    `keys_dir`. `account` names it in the keyring."""
    source_file = keys_dir / "master.source"
    check_file = keys_dir / "master.check"
    remembered = source_file.read_text().strip() if source_file.exists() else None
    found = _find_key(keys_dir, account, remembered, create=create)
    if check_file.exists():
        if not hmac.compare_digest(check_file.read_text().strip(), check_value(found.key)):
            raise ConfigError(
                f"The master key from {found.source.value} is not the key this workspace was "
                "created with; restore the original key (see `caracal config` docs)."
            )
    elif create:
        _write_private(check_file, check_value(found.key) + "\n")
    if create and remembered != found.source.value:
        _write_private(source_file, found.source.value + "\n")
    return found


def _find_key(keys_dir: Path, account: str, remembered: str | None, *, create: bool) -> MasterKey:
    env = os.environ.get("CARACAL_MASTER_KEY")
    if env:
        return MasterKey(decode_key(env, "CARACAL_MASTER_KEY"), MasterKeySource.ENV)
    key_file_env = os.environ.get("CARACAL_MASTER_KEY_FILE")
    if key_file_env:
        try:
            text = Path(key_file_env).read_text()
        except OSError as exc:
            raise ConfigError(
                f"CARACAL_MASTER_KEY_FILE points at {key_file_env!r}, which cannot be read "
                f"({exc.strerror}); fix the path or unset it."
            ) from None
        return MasterKey(decode_key(text, key_file_env), MasterKeySource.FILE_ENV)
    key_file = keys_dir / "master.key"
    if remembered == MasterKeySource.KEY_FILE.value or key_file.exists():
        if key_file.exists():
            return MasterKey(
                decode_key(key_file.read_text(), str(key_file)), MasterKeySource.KEY_FILE
            )
        raise ConfigError(
            f"The master key file {key_file} is missing; restore it or set CARACAL_MASTER_KEY."
        )
    backend = _keyring_backend()
    if backend is not None or remembered == MasterKeySource.KEYRING.value:
        key = _keyring_key(backend, account, remembered, create=create)
        if key is not None:
            return MasterKey(key, MasterKeySource.KEYRING)
    if not create:
        raise ConfigError(
            "No master key is available for this workspace; set CARACAL_MASTER_KEY or "
            "CARACAL_MASTER_KEY_FILE."
        )
    key = secrets.token_bytes(32)
    _write_private(key_file, key.hex() + "\n")
    log.warning("no OS keyring available; generated a master key file (mode 0600)")
    return MasterKey(key, MasterKeySource.KEY_FILE, generated_file=True)


def _keyring_key(
    backend: object | None, account: str, remembered: str | None, *, create: bool
) -> bytes | None:
    username = f"master-key/{account}"
    try:
        if backend is None:
            raise RuntimeError("no keyring backend")
        stored = _with_timeout(backend.get_password, KEYRING_SERVICE, username)  # type: ignore[attr-defined]
        if stored:
            return decode_key(str(stored), "the keyring entry")
        if remembered == MasterKeySource.KEYRING.value:
            raise ConfigError(
                "This workspace's master key is missing from the OS keyring; restore it or set "
                "CARACAL_MASTER_KEY."
            )
        if not create:
            return None
        key = secrets.token_bytes(32)
        _with_timeout(backend.set_password, KEYRING_SERVICE, username, key.hex())  # type: ignore[attr-defined]
        return key
    except ConfigError:
        raise
    except Exception as exc:
        if remembered == MasterKeySource.KEYRING.value:
            raise UnavailableError(
                f"The OS keyring holding this workspace's master key is unavailable ({exc}); "
                "unlock it or set CARACAL_MASTER_KEY."
            ) from None
        log.info("keyring unavailable (%s); falling back to a key file", exc)
        return None


def forget_keyring_entry(account: str) -> None:
    backend = _keyring_backend()
    if backend is None:
        return
    try:
        _with_timeout(backend.delete_password, KEYRING_SERVICE, f"master-key/{account}")  # type: ignore[attr-defined]
    except Exception as exc:
        log.info("could not remove keyring entry: %s", exc)
