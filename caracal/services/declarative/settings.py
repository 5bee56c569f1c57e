"""The settings a state file carries: the ones that say how authority is checked and recorded,
the same wherever the workspace runs. Where the store lives, where the service listens, Redis
and the ledger witnesses are the host's business (and may hold secrets), so they stay out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from caracal.core.errors import ConfigError, ValidationError
from caracal.home import config as cfg
from caracal.home.config_model import WorkspaceConfig

SAFE_SETTINGS: tuple[str, ...] = (
    "ledger.checkpoint_every",
    "logging.level",
    "runtime.anonymous_denials.burst",
    "runtime.anonymous_denials.interval_seconds",
    "runtime.anonymous_denials.per_client_per_second",
    "runtime.max_body_bytes",
    "validation.cache_size",
    "validation.clock_leeway_seconds",
)


def in_effect(config: WorkspaceConfig) -> dict[str, Any]:
    values = cfg.flatten(config.model_dump(mode="json"))
    return {key: values[key] for key in SAFE_SETTINGS}


def unknown(key: str) -> str | None:
    """Why `key` cannot be in the file, or None."""
    if key in SAFE_SETTINGS:
        return None
    if key in cfg.known_keys():
        return f"setting {key!r} belongs to the host, not the file (see `caracal config set`)"
    return f"unknown setting {key!r}; the file carries {', '.join(SAFE_SETTINGS)}"


def with_settings(
    path: Path,
    env: Mapping[str, str],
    changes: Mapping[str, Any],
    decrypt: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """config.yaml as it is and as it would be with `changes`, the latter validated."""
    before = cfg.read_raw(path)
    after = before
    for key, value in changes.items():
        after = cfg.set_path(after, key, value)
    try:
        cfg.validate_raw(
            after, str(path), dict(env), decrypt=decrypt if cfg.has_encrypted(after) else None
        )
    except ConfigError as exc:
        raise ValidationError(f"The file's settings are not valid here: {exc.message}") from None
    return before, after
