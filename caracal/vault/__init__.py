"""Secrets at rest: AES-256-GCM under a per-workspace master key."""

from caracal.vault.cipher import SecretCipher
from caracal.vault.master_key import MasterKeySource, resolve_master_key

__all__ = ["MasterKeySource", "SecretCipher", "resolve_master_key"]
