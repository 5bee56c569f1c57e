"""`config.yaml`: a strict pydantic model, `${VAR}` expansion and `ENC[...]` secrets."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from caracal.core.errors import ConfigError, NotFoundError, ValidationError
from caracal.core.names import IDENTIFIER
from caracal.core.redact import MASK, is_encrypted_value, mask_url, mask_urls
from caracal.home.atomic import atomic_write_text

__all__ = ["MASK", "is_encrypted_value", "mask_url"]  # re-exported for the front ends

CONFIG_VERSION = 1
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _secret(**kwargs: Any) -> Any:
    return Field(json_schema_extra={"secret": True}, **kwargs)


class StoreSettings(_Section):
    url: str = _secret(
        default="sqlite:///store.db",
        description="SQLAlchemy URL; a relative SQLite path is inside the workspace folder.",
    )
    pg_schema: str | None = Field(None, description="PostgreSQL schema holding this workspace.")
    pool_size: int = Field(5, ge=1, le=64)
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000)


class WitnessSettings(_Section):
    """One place outside the store that keeps the newest signed ledger head: a file
    (`path`), a Redis key (`redis_url`, `redis_key`) or an HTTP endpoint that receives each
    head (`http_url`)."""

    path: str | None = Field(None, description="A file, e.g. on another disk.")
    redis_url: str | None = Field(None, description="Use ${VAR} or ENC[...] for a password.")
    redis_key: str | None = Field(None, description="Default: caracal:ledger-head:<id>.")
    http_url: str | None = Field(None, description="Receives each head as a JSON POST.")
    timeout_seconds: float = Field(2.0, gt=0, le=30)

    @model_validator(mode="after")
    def _one_kind(self) -> WitnessSettings:
        kinds = [k for k in ("path", "redis_url", "http_url") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("a witness names exactly one of path, redis_url or http_url")
        return self


class LedgerSettings(_Section):
    checkpoint_every: int = Field(
        1000, ge=10, le=1_000_000, description="Keep a signed head in the history this often."
    )
    witnesses: list[WitnessSettings] = Field(
        default_factory=list, description="Where else the newest signed head is kept."
    )


class ValidationSettings(_Section):
    clock_leeway_seconds: int = Field(30, ge=0, le=600)
    cache_size: int = Field(10_000, ge=0, le=10_000_000)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AnonymousDenialSettings(_Section):
    """Denials of tokens tied to no known key (missing, malformed, unknown key, bad
    signature): recorded in aggregate, and limited per client."""

    interval_seconds: float = Field(
        10.0, ge=1, le=3600, description="One ledger event per reason and client this often."
    )
    per_client_per_second: float = Field(
        10.0, ge=0, le=100_000, description="A client's budget refill rate; 0 turns the limit off."
    )
    burst: int = Field(50, ge=1, le=1_000_000, description="A client's budget when full.")


class McpUpstreamSettings(_Section):
    """Limits on the MCP gate's calls to one upstream server: a slow or hostile server uses up
    its own share and no other server's."""

    connections: int = Field(16, ge=1, le=1024, description="Open connections to the server.")
    concurrent_calls: int = Field(16, ge=1, le=1024, description="Calls in flight at once.")
    queued_calls: int = Field(32, ge=0, le=10_000, description="Calls waiting for a free slot.")
    call_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Whole call, queue and stream included."
    )
    initialize_timeout_seconds: float = Field(
        10.0, gt=0, le=600, description="Opening a session (and waiting for another to open)."
    )
    max_reply_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="One answer, as received."
    )
    max_reply_containers: int = Field(
        100_000,
        ge=100,
        le=10_000_000,
        description="JSON objects and arrays in one answer (what parsing it costs).",
    )
    max_tools: int = Field(1000, ge=1, le=100_000, description="Tools one listing may hold.")
    max_tools_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="All pages of one listing."
    )
    failures_to_open: int = Field(
        5, ge=1, le=1000, description="Failures in a row after which calls are refused at once."
    )
    open_seconds: float = Field(
        10.0, gt=0, le=3600, description="How long calls are refused before one is tried."
    )


class GatewaySettings(_Section):
    """The provider gateway (`/v1/providers/<provider>/<path>`)."""

    passthrough: list[str] = Field(
        default_factory=list,
        description="Providers without a catalog the gateway forwards to, a list or comma "
        "separated (a mandate for `provider:<p>:action:all` on `provider:<p>:resource:all` "
        "is then needed).",
    )
    connect_timeout_seconds: float = Field(5.0, gt=0, le=300)
    read_timeout_seconds: float = Field(
        60.0, gt=0, le=3600, description="Longest silence from the provider before a 504."
    )
    max_body_bytes: int = Field(
        1024**3, ge=1024, le=64 * 1024**3, description="Largest body streamed either way."
    )

    forward_auth_credential: list[str] = Field(
        default_factory=list,
        description="Providers whose credential an allowed `/v1/forward-auth` answer carries "
        "(`X-Caracal-Credential`) for the gateway in front to inject; off for every provider "
        "by default.",
    )
    credential_peers: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Peer addresses that may receive such a credential.",
    )

    @field_validator("passthrough", "forward_auth_credential", "credential_peers", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # `config set` takes scalars: `config set runtime.gateway.passthrough a,b`.
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class RuntimeSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    redis_url: str | None = _secret(default=None)
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)
    anonymous_denials: AnonymousDenialSettings = Field(default_factory=AnonymousDenialSettings)
    mcp: McpUpstreamSettings = Field(default_factory=McpUpstreamSettings)
    # Per MCP server (by name): replaces `mcp` for that server; unset fields take the defaults.
    mcp_servers: dict[str, McpUpstreamSettings] = Field(default_factory=dict)

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _server_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in value:
                if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
                    raise ValueError(f"{str(name)[:64]!r} is not an MCP server name")
        return value

    def mcp_limits(self, server: str) -> McpUpstreamSettings:
        return self.mcp_servers.get(server) or self.mcp

    gateway: GatewaySettings = Field(default_factory=GatewaySettings)


class WorkspaceConfig(_Section):
    version: int = CONFIG_VERSION
    workspace: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    store: StoreSettings = Field(default_factory=StoreSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)


def secret_keys() -> set[str]:
    out: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
            elif isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret"):
                out.add(f"{prefix}{name}")

    walk(WorkspaceConfig, "")
    return out


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
