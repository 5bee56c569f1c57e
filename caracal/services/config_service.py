"""`config.yaml` operations: list, get, set (atomically, validated), encrypt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from caracal.core.errors import ConfigError, ValidationError
from caracal.home import config as cfg

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


class ConfigService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    def _raw(self) -> dict[str, Any]:
        return cfg.read_raw(self.app.paths.config)

    def items(self, *, reveal: bool = False) -> dict[str, Any]:
        """Every key with its value as written in the file (secrets masked unless `reveal`)."""
        raw = self._raw()
        defaults = cfg.flatten(cfg.WorkspaceConfig(workspace=self.app.name).model_dump(mode="json"))
        written = cfg.flatten(raw)
        secrets = cfg.secret_keys()
        out: dict[str, Any] = {}
        for key in cfg.known_keys():
            out[key] = self._display(key, written.get(key, defaults.get(key)), reveal, secrets)
        return out

    def get(self, key: str, *, reveal: bool = False) -> Any:
        value = cfg.get_path(self._raw(), key)
        if isinstance(value, dict):
            flat = cfg.flatten(value, key + ".")
            secrets = cfg.secret_keys()
            return {k: self._display(k, v, reveal, secrets) for k, v in flat.items()}
        return self._display(key, value, reveal, cfg.secret_keys())

    def set_value(self, key: str, text: str) -> Any:
        """Set a key from its command-line text; secret keys are stored encrypted."""
        value: Any = cfg.parse_cli_value(text)
        if (
            key in cfg.secret_keys()
            and isinstance(value, str)
            and value
            and "${" not in value
            and not cfg.is_encrypted_value(value)
        ):
            value = self.app.cipher.encrypt_value(value)
        raw = cfg.set_path(self._raw(), key, value)
        decrypt = self.app.cipher.decrypt_value if _has_encrypted(raw) else None
        try:
            cfg.validate_raw(raw, str(self.app.paths.config), self.app.env, decrypt=decrypt)
        except ConfigError as exc:
            raise ValidationError(f"Not saved: {exc.message}") from None
        cfg.write_raw(self.app.paths.config, raw)
        return self._display(key, value, False, cfg.secret_keys())

    def encrypt(self, plaintext: str) -> str:
        return self.app.cipher.encrypt_value(plaintext)

    def _display(self, key: str, value: Any, reveal: bool, secrets: set[str]) -> Any:
        """Encrypted values are opened, then shown whole only with `reveal`; URLs keep all but
        their password visible."""
        if cfg.is_encrypted_value(value):
            value = self.app.cipher.decrypt_value(value)
            if not reveal and not (isinstance(value, str) and "://" in value):
                return cfg.MASK
        return value if reveal else cfg.mask_value(key, value, secrets)


def _has_encrypted(raw: dict[str, Any]) -> bool:
    return any(cfg.is_encrypted_value(v) for v in cfg.flatten(raw).values())
