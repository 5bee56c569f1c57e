"""`config.yaml` operations: list, get, set (atomically, validated), encrypt.

The rules about settings live here, for every front end: which keys are read-only, which
locate the store (not changed from Flow or the restricted shell), that a secret is sealed
(`ENC[...]`) whichever way it enters, and that a secret is masked whichever way it is shown."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from caracal.core.errors import ConfigError, UnavailableError, ValidationError
from caracal.core.redact import url_has_secret
from caracal.home import config as cfg
from caracal.home.config_model import WorkspaceConfig, secret_keys

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

# Keys no front end changes, and why.
READ_ONLY: dict[str, str] = {
    "version": "the config format version is managed by Caracal",
    "workspace": "a workspace's name is fixed when it is created",
    "created_at": "the creation time is a record, not a setting",
}
# Keys that point the workspace at a store: changed only on the command line of the host that
# runs Caracal (not from Flow, not from the restricted shell).
STORE_LOCATION: frozenset[str] = frozenset({"store.url", "store.pg_schema"})
_REFERENCE = re.compile(r"\$\{[^}]*\}")


# One setting's value: a URL, a key in PEM, a list of witnesses... never more than this.
MAX_VALUE_BYTES = 64 * 1024


def seal_if_secret(key: str, value: Any, seal: Any, secrets: set[str] | None = None) -> Any:
    """`value` as it is written to config.yaml under `key`: a secret setting holding a literal
    secret is sealed with `seal` (the workspace cipher); `${VAR}` references stay as they are.
    A value mixing a reference with a literal secret cannot be sealed, and is refused."""
    secrets = secret_keys() if secrets is None else secrets
    if not isinstance(value, str) or not value or cfg.is_encrypted_value(value):
        return value
    if key not in secrets and not ("://" in value and url_has_secret(value)):
        return value
    if "${" in value:
        literal = _REFERENCE.sub("", value)
        if "://" in value and not url_has_secret(literal):
            return value  # the secret part comes from the environment
        if "://" not in value and not literal:
            return value
        raise ValidationError(
            f"{key} mixes ${{...}} with a literal secret; put the secret in the environment "
            "variable too, or give the whole value without ${...} so it can be sealed."
        )
    return seal(value)


def seal_literal_secrets(raw: dict[str, Any], seal: Any) -> dict[str, Any]:
    """The config with every secret setting that holds a literal secret sealed."""
    secrets = secret_keys()
    for key, value in cfg.flatten(raw).items():
        sealed = seal_if_secret(key, value, seal, secrets)
        if sealed is not value:
            raw = cfg.set_path(raw, key, sealed)
    return raw


def without_literal_secrets(raw: dict[str, Any]) -> dict[str, Any]:
    """The config as it may leave the vault unlocked: literal secrets (in secret settings, or
    a URL's password anywhere) are left out, and a list entry holding one is dropped; sealed
    values and `${VAR}` references stay."""
    secrets = secret_keys()

    def literal(key: str, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return seal_if_secret(key, value, lambda _: None, secrets) is None
        except ValidationError:
            return True

    def holds(value: Any, key: str) -> bool:
        if isinstance(value, dict):
            return any(holds(v, f"{key}.{k}") for k, v in value.items())
        if isinstance(value, list):
            return any(holds(v, key) for v in value)
        return literal(key, value)

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [v for v in value if not holds(v, key)]
        return None if literal(key, value) else value

    stripped: dict[str, Any] = walk(raw, "")
    return stripped


class ConfigService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    def _raw(self) -> dict[str, Any]:
        return cfg.read_raw(self.app.paths.config)

    @staticmethod
    def read_only(key: str) -> str | None:
        """Why `key` cannot be changed, or None."""
        return READ_ONLY.get(key)

    @staticmethod
    def locates_store(key: str) -> bool:
        return key in STORE_LOCATION

    def items(self, *, reveal: bool = False) -> dict[str, Any]:
        """Every key with its value as written in the file (secrets masked unless `reveal`)."""
        raw = self._raw()
        defaults = cfg.flatten(WorkspaceConfig(workspace=self.app.name).model_dump(mode="json"))
        written = cfg.flatten(raw)
        secrets = secret_keys()
        out: dict[str, Any] = {}
        for key in cfg.known_keys():
            out[key] = self._display(key, written.get(key, defaults.get(key)), reveal, secrets)
        return out

    def in_effect(self, *, reveal: bool = False) -> dict[str, dict[str, Any]]:
        """Every key with the value Caracal uses (after `${VAR}` expansion and decryption;
        secrets masked unless `reveal`) and, where the file writes it differently, the
        template as written (`${VAR}` references kept, sealed values shown as sealed)."""
        values = cfg.flatten(self.app.config.model_dump(mode="json"))
        written = cfg.flatten(self._raw())
        secrets = secret_keys()
        out: dict[str, dict[str, Any]] = {}
        for key in cfg.known_keys():
            value = values.get(key)
            shown = value if reveal else cfg.mask_value(key, value, secrets)
            out[key] = {"value": shown, "template": self._template(key, written.get(key))}
        return out

    @staticmethod
    def _template(key: str, raw: Any) -> str | None:
        if not isinstance(raw, str):
            return None
        if cfg.is_encrypted_value(raw):
            return "ENC[…] (sealed in config.yaml)"
        if "${" in raw:
            # References are shown as written; a literal password beside them is masked.
            literal = _REFERENCE.sub("", raw)
            has_secret = "://" in raw and url_has_secret(literal)
            return str(cfg.mask_value(key, raw, set())) if has_secret else raw
        return None

    def get(self, key: str, *, reveal: bool = False) -> Any:
        value = cfg.get_path(self._raw(), key)
        if isinstance(value, dict):
            flat = cfg.flatten(value, key + ".")
            secrets = secret_keys()
            return {k: self._display(k, v, reveal, secrets) for k, v in flat.items()}
        return self._display(key, value, reveal, secret_keys())

    def set_value(self, key: str, text: str) -> Any:
        """Set a key from its command-line text; secrets are stored sealed."""
        reason = self.read_only(key)
        if reason is not None:
            raise ValidationError(f"{key} is read-only: {reason}.")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
            raise ValidationError(
                f"The value for {key} is over {MAX_VALUE_BYTES:,} bytes; nothing was saved."
            )
        return self._store(key, cfg.parse_cli_value(text))

    def set_secret(self, key: str, text: str | None) -> bool:
        """Set (or with None, clear) a secret setting from a masked input: the text is taken
        literally (never read as YAML, so `yes` or `0123` stay text), stored sealed, and never
        handed back; returns whether the setting now holds a value."""
        if key not in secret_keys():
            raise ValidationError(f"{key} is not a secret setting; change it as a plain value.")
        reason = self.read_only(key) or (
            "it points the workspace at another store" if self.locates_store(key) else None
        )
        if reason is not None:
            raise ValidationError(f"{key} cannot be changed here: {reason}.")
        if text is not None and not text:
            raise ValidationError(f"Type the new value for {key}, or clear it.")
        if text is not None and len(text.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
            raise ValidationError(
                f"The value for {key} is over {MAX_VALUE_BYTES:,} bytes; nothing was saved."
            )
        self._store(key, text)
        return text is not None

    def _store(self, key: str, value: Any) -> Any:
        value = seal_if_secret(key, value, self.app.cipher.encrypt_value)
        raw = cfg.set_path(self._raw(), key, value)
        decrypt = self.app.cipher.decrypt_value if cfg.has_encrypted(raw) else None
        try:
            config = cfg.validate_raw(
                raw, str(self.app.paths.config), self.app.env, decrypt=decrypt
            )
        except ConfigError as exc:
            raise ValidationError(f"Not saved: {exc.message}") from None
        if self.locates_store(key):
            self._check_store_move(config.store.url, config.store.pg_schema)
        cfg.write_raw(self.app.paths.config, raw)
        return self._display(key, value, False, secret_keys())

    def _check_store_move(self, url: str, pg_schema: str | None) -> None:
        """A new store location must hold this workspace's own store: reachable, initialised,
        and carrying the workspace id the head file outside the store records. Anything else
        would leave the workspace pointing at nothing (or at another workspace's data)."""
        from sqlalchemy.exc import SQLAlchemyError

        from caracal.core.errors import CaracalError
        from caracal.core.redact import mask_url
        from caracal.services.head_witnesses import HEAD_FILE, parse_head
        from caracal.store import meta
        from caracal.store.engine import driver_errors, open_store, resolve_location

        try:
            location = resolve_location(url, pg_schema, self.app.paths.root)
        except ConfigError as exc:
            raise ValidationError(f"Not saved: {exc.message}") from None
        if location == self.app.location:
            return
        move = (
            "to move the workspace to another store, back it up and restore it with `--store-url`"
        )
        shown = mask_url(location.url) + (f" (schema {pg_schema})" if pg_schema else "")
        unreachable: tuple[type[Exception], ...] = (*driver_errors(), SQLAlchemyError)
        try:
            store = open_store(location, migrate=False)
        except CaracalError as exc:
            raise exc.__class__(f"Not saved: {shown}: {exc.message}") from None
        except unreachable as exc:
            first = str(getattr(exc, "orig", exc)).strip().splitlines()[:1]
            raise UnavailableError(
                f"Not saved: {shown} cannot be reached ({first[0] if first else exc}); check "
                "the URL and that the database is running."
            ) from None
        try:
            with store.read() as conn:
                held = meta.get(conn, "workspace_id")
        except Exception:  # no meta table: not a Caracal store
            held = None
        finally:
            store.dispose()
        head_file = self.app.paths.keys / HEAD_FILE
        expected = (
            parse_head(head_file.read_bytes(), HEAD_FILE).workspace_id
            if head_file.exists()
            else None
        )
        if held is None:
            raise ValidationError(f"Not saved: {shown} holds no Caracal store; {move}.")
        if expected and held != expected:
            raise ValidationError(
                f"Not saved: {shown} holds another workspace's store ({held}); {move}."
            )

    def encrypt(self, plaintext: str) -> str:
        return self.app.cipher.encrypt_value(plaintext)

    def _display(self, key: str, value: Any, reveal: bool, secrets: set[str]) -> Any:
        """Sealed values are opened, then shown whole only with `reveal`; URLs keep all but
        their password visible."""
        if cfg.is_encrypted_value(value):
            value = self.app.cipher.decrypt_value(value)
            if not reveal and not (isinstance(value, str) and "://" in value):
                return cfg.MASK
        if isinstance(value, list):
            value = [self._display(key, v, reveal, secrets) for v in value]
        elif isinstance(value, dict):
            value = {k: self._display(f"{key}.{k}", v, reveal, secrets) for k, v in value.items()}
        return value if reveal else cfg.mask_value(key, value, secrets)
