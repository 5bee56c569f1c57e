"""Master key sources, their order and the failures a user can make."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.core.errors import ConfigError, IntegrityError
from caracal.vault.cipher import SecretCipher
from caracal.vault.master_key import MasterKeySource, resolve_master_key
from tests.support.cli import run_cli


def test_cipher_binds_ciphertext_to_its_context() -> None:
    cipher = SecretCipher(secrets.token_bytes(32))
    blob = cipher.seal(b"token", "provider/a/credential")
    assert cipher.open(blob, "provider/a/credential") == b"token"
    with pytest.raises(IntegrityError):
        cipher.open(blob, "provider/b/credential")
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(IntegrityError):
        cipher.open(flipped, "provider/a/credential")
    with pytest.raises(IntegrityError):
        SecretCipher(secrets.token_bytes(32)).open(blob, "provider/a/credential")


def test_generated_key_file_is_private_and_announced_once(home: Path) -> None:
    first = run_cli("workspace", "create", "demo")
    assert "master key is stored in" in first.stderr
    key = home / "workspaces" / "demo" / "keys" / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    later = run_cli("config", "encrypt", input="x")
    assert later.code == 0 and "master key" not in later.stderr


def test_environment_key_wins_and_a_wrong_key_is_a_clear_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secrets.token_hex(32)
    monkeypatch.setenv("CARACAL_MASTER_KEY", key)
    created = run_cli("workspace", "create", "demo")
    assert created.code == 0 and "master key" not in created.stderr
    assert not (home / "workspaces" / "demo" / "keys" / "master.key").exists()
    enc = run_cli("config", "encrypt", input="hello").stdout.strip()
    monkeypatch.setenv("CARACAL_MASTER_KEY", secrets.token_hex(32))
    wrong = run_cli("config", "encrypt", input="x")
    assert (
        wrong.code == ExitCode.CONFIG
        and "not the key this workspace was created with" in wrong.stderr
    )
    monkeypatch.setenv("CARACAL_MASTER_KEY", "too-short")
    malformed = run_cli("config", "encrypt", input="x")
    assert malformed.code == ExitCode.CONFIG and "32-byte key" in malformed.stderr
    monkeypatch.setenv("CARACAL_MASTER_KEY", key)
    cipher_ok = run_cli("config", "encrypt", input="x")
    assert cipher_ok.code == 0 and enc.startswith("ENC[")


def test_key_file_env_is_second_in_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARACAL_KEYRING", "off")
    monkeypatch.delenv("CARACAL_MASTER_KEY", raising=False)
    key = secrets.token_bytes(32)
    secret_file = tmp_path / "secret"
    secret_file.write_text(key.hex())
    monkeypatch.setenv("CARACAL_MASTER_KEY_FILE", str(secret_file))
    found = resolve_master_key(tmp_path / "keys", "acct")
    assert found.key == key and found.source is MasterKeySource.FILE_ENV
    env_key = secrets.token_bytes(32)
    import base64

    monkeypatch.setenv("CARACAL_MASTER_KEY", base64.b64encode(env_key).decode())
    with pytest.raises(ConfigError, match="not the key"):
        resolve_master_key(tmp_path / "keys", "acct")
    monkeypatch.delenv("CARACAL_MASTER_KEY")
    monkeypatch.setenv("CARACAL_MASTER_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot be read"):
        resolve_master_key(tmp_path / "keys", "acct")


def test_missing_key_file_is_not_silently_replaced(home: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    os.remove(home / "workspaces" / "demo" / "keys" / "master.key")
    result = run_cli("config", "encrypt", input="x")
    assert result.code == ExitCode.CONFIG and "master key file" in result.stderr
    assert not (home / "workspaces" / "demo" / "keys" / "master.key").exists()


class _MemoryKeyring:
    """Stands in for an OS keyring service (none can run on this headless machine)."""

    priority = 10

    def __init__(self, delay: float = 0.0, broken: bool = False) -> None:
        self.items: dict[tuple[str, str], str] = {}
        self.delay = delay
        self.broken = broken

    def get_password(self, service: str, user: str) -> str | None:
        import time

        time.sleep(self.delay)
        if self.broken:
            raise RuntimeError("keyring locked")
        return self.items.get((service, user))

    def set_password(self, service: str, user: str, password: str) -> None:
        self.items[(service, user)] = password

    def delete_password(self, service: str, user: str) -> None:
        self.items.pop((service, user), None)


@pytest.fixture
def fake_keyring(monkeypatch: pytest.MonkeyPatch) -> _MemoryKeyring:
    import caracal.vault.master_key as mk

    backend = _MemoryKeyring()
    monkeypatch.delenv("CARACAL_KEYRING", raising=False)
    monkeypatch.delenv("CARACAL_MASTER_KEY", raising=False)
    monkeypatch.delenv("CARACAL_MASTER_KEY_FILE", raising=False)
    monkeypatch.setattr(mk, "_keyring_backend", lambda: backend)
    return backend


def test_keyring_holds_the_key_and_an_outage_never_means_a_new_key(
    tmp_path: Path, fake_keyring: _MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    import caracal.vault.master_key as mk
    from caracal.core.errors import UnavailableError

    first = resolve_master_key(tmp_path / "keys", "acct")
    assert first.source is MasterKeySource.KEYRING
    assert not (tmp_path / "keys" / "master.key").exists()
    assert resolve_master_key(tmp_path / "keys", "acct", create=False).key == first.key
    fake_keyring.broken = True
    with pytest.raises(UnavailableError, match="keyring"):
        resolve_master_key(tmp_path / "keys", "acct", create=False)
    monkeypatch.setattr(mk, "_keyring_backend", lambda: None)
    with pytest.raises((UnavailableError, ConfigError)):
        resolve_master_key(tmp_path / "keys", "acct")
    assert not (tmp_path / "keys" / "master.key").exists()


def test_a_hanging_keyring_falls_back_within_the_timeout(
    tmp_path: Path, fake_keyring: _MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import caracal.vault.master_key as mk

    monkeypatch.setattr(mk, "KEYRING_TIMEOUT_S", 0.3)
    fake_keyring.delay = 5
    started = time.monotonic()
    found = resolve_master_key(tmp_path / "keys", "acct")
    assert time.monotonic() - started < 2
    assert found.source is MasterKeySource.KEY_FILE and found.generated_file
