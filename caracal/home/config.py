"""`config.yaml` on disk: safe YAML reading, `${VAR}` expansion, `ENC[...]` secrets, validation
against the model (`config_model`), and the dotted keys `caracal config` gets and sets."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from caracal.core.errors import ConfigError, NotFoundError, ValidationError
from caracal.core.redact import MASK, is_encrypted_value, mask_url, mask_urls
from caracal.home.atomic import atomic_write_text
from caracal.home.config_model import WorkspaceConfig

__all__ = ["MASK", "is_encrypted_value", "mask_url"]  # re-exported for the front ends

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def expand_vars(raw: Any, env: dict[str, str], where: str) -> Any:
    if isinstance(raw, dict):
        return {k: expand_vars(v, env, where) for k, v in raw.items()}
    if isinstance(raw, list):
        return [expand_vars(v, env, where) for v in raw]
    if not isinstance(raw, str):
        return raw

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name} is not set; set it or write ${{{name}:default}}."
        )

    return _VAR.sub(substitute, raw)


def has_encrypted(raw: Any) -> bool:
    """Whether any value, at any depth (lists included), is sealed."""
    if isinstance(raw, dict):
        return any(has_encrypted(v) for v in raw.values())
    if isinstance(raw, list):
        return any(has_encrypted(v) for v in raw)
    return is_encrypted_value(raw)


def decrypt_values(raw: Any, decrypt: Callable[[str], str]) -> Any:
    if isinstance(raw, dict):
        return {k: decrypt_values(v, decrypt) for k, v in raw.items()}
    if isinstance(raw, list):
        return [decrypt_values(v, decrypt) for v in raw]
    return decrypt(raw) if is_encrypted_value(raw) else raw


_MAX_FLOW_DEPTH = 64


class _ConfigLoader(yaml.SafeLoader):
    """`yaml.safe_load` without aliases and without deep `[{...}]` nesting. config.yaml needs
    neither; a few lines of aliases make a self-referencing or exponentially large document,
    and PyYAML's scanner takes quadratic time in the flow depth (seconds for 5 KB of `[`)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", mark)
        return super().compose_node(parent, index)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= _MAX_FLOW_DEPTH:
            mark = self.get_mark()
            raise yaml.scanner.ScannerError(None, None, "collections are nested too deeply", mark)
        super().fetch_flow_collection_start(TokenClass)


# PyYAML's scalar constructors raise plain exceptions on malformed values (`2024-02-30`,
# `0x_`, `!!bool maybe`, `!!timestamp x`), and deep nesting exhausts the recursion limit.
YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, RecursionError)


def load_yaml(text: str | bytes) -> Any:
    """Parse like `yaml.safe_load`, refusing aliases and deep nesting; raises one of
    YAML_ERRORS."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader


def read_raw(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path} is missing; recreate the workspace or restore a backup."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; fix its encoding.") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ConfigError(f"{path}{line}: {_one_line(problem)}; fix the YAML syntax.") from None
    except YAML_ERRORS as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else _one_line(str(exc))
        raise ConfigError(f"{path}: a value cannot be read ({detail}); fix the YAML.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values.")
    return data


def validate_raw(
    raw: dict[str, Any],
    where: str,
    env: dict[str, str],
    decrypt: Callable[[str], str] | None = None,
) -> WorkspaceConfig:
    resolved = expand_vars(raw, env, where)
    if decrypt is not None:
        resolved = decrypt_values(resolved, decrypt)
    try:
        return WorkspaceConfig.model_validate(resolved)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigError(
                f"{where}: unknown key {key!r}; remove it or check its spelling."
            ) from None
        raise ConfigError(f"{where}: {key}: {first['msg']}.") from None


def dump_raw(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)


def default_raw(workspace: str, store_url: str | None, pg_schema: str | None) -> dict[str, Any]:
    config = WorkspaceConfig(workspace=workspace)
    raw = config.model_dump(mode="json")
    if store_url:
        raw["store"]["url"] = store_url
        raw["store"]["pg_schema"] = pg_schema
    return raw


def write_raw(path: Path, raw: dict[str, Any]) -> None:
    atomic_write_text(path, dump_raw(raw))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def known_keys() -> list[str]:
    return sorted(flatten(WorkspaceConfig(workspace="x").model_dump(mode="json")))


def get_path(raw: dict[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise NotFoundError(f"Unknown config key {key!r}; see `caracal config list`.")
        node = node[part]
    return node


def set_path(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if key not in known_keys():
        raise ValidationError(f"Unknown config key {key!r}; see `caracal config list`.")
    updated = copy.deepcopy(raw)
    parts = key.split(".")
    node = updated
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    return updated


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200] or "malformed"


def parse_cli_value(text: str) -> Any:
    """`config set` values: YAML scalars, so `5` is an int, `null` is None, `true` a bool."""
    try:
        value = load_yaml(text)
    except YAML_ERRORS:
        return text
    if isinstance(value, dict | list):
        return text
    return value


def mask_value(key: str, value: Any, secrets: set[str]) -> Any:
    """A value as it may be shown: sealed and secret values masked whole (a secret URL keeps
    all but its password), and the password of any URL anywhere masked."""
    if value is None:
        return None
    if is_encrypted_value(value):
        return MASK
    if key in secrets and isinstance(value, str) and "://" not in value:
        return MASK
    return mask_urls(value)
