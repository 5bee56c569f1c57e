"""`config.yaml`'s schema: one strict pydantic model per section, secrets marked as such."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from caracal.core.names import IDENTIFIER

CONFIG_VERSION = 1


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
