"""AES-256-GCM sealing of secrets, bound to what they belong to through associated data."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from caracal.core.errors import ConfigError, IntegrityError
from caracal.core.redact import ENC_PREFIX, ENC_SUFFIX, is_encrypted_value

__all__ = ["ENC_PREFIX", "ENC_SUFFIX", "SecretCipher", "is_encrypted_value"]
_VERSION = b"\x01"
_NONCE = 12


class SecretCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("The master key must be 32 bytes.")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, blob: bytes, context: str) -> bytes:
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
            raise IntegrityError(f"Secret {context!r} is corrupt or from an unknown version.")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], context.encode())
        except InvalidTag:
            raise IntegrityError(
                f"Secret {context!r} cannot be decrypted: the master key does not match "
                "or the data was altered."
            ) from None

    # `ENC[...]` values in config.yaml: bound to the config context, portable within a workspace.
    def encrypt_value(self, value: str) -> str:
        token = base64.urlsafe_b64encode(self.seal(value.encode(), "config")).decode()
        return f"{ENC_PREFIX}{token}{ENC_SUFFIX}"

    def decrypt_value(self, value: str) -> str:
        if not is_encrypted_value(value):
            return value
        try:
            blob = base64.urlsafe_b64decode(value[len(ENC_PREFIX) : -len(ENC_SUFFIX)])
        except ValueError:
            raise ConfigError("An ENC[...] value is not valid base64.") from None
        try:
            return self.open(blob, "config").decode()
        except IntegrityError:  # a config.yaml problem (exit 10), not a damaged store
            raise ConfigError(
                "An ENC[...] value in config.yaml cannot be decrypted: the master key does not "
                "match or the value was altered; set it again with `caracal config set`."
            ) from None
