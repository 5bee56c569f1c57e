"""The Compose value syntaxes the stack uses: `${VAR}` interpolation, durations, signals and
the short forms of mounts, ports, lists and mappings; each problem a ConfigError naming its key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from caracal.core.errors import ConfigError
from caracal.launcher.compose_model import Healthcheck, Mount, Port

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)")
_UNIT_NS = {"us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60 * 10**9, "h": 3600 * 10**9}
_SIGNAL = re.compile(r"SIG[A-Z0-9]+(?:[+-]\d+)?|\d+")


def interpolate(value: str, env: Mapping[str, str], where: str) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `$$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group("braced") if match.group("braced") is not None else match.group("bare")
        for op in (":-", "-", ":?", "?"):
            name, found, rest = expr.partition(op)
            if found and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                current = env.get(name)
                if op == ":-":
                    return current if current else rest
                if op == "-":
                    return current if current is not None else rest
                if not current if op == ":?" else current is None:
                    raise ConfigError(f"{where}: {rest or f'{name} must be set'}.")
                return current or ""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", expr):
            raise ConfigError(f"{where}: cannot read the variable reference ${{{expr}}}.")
        return env.get(expr, "")

    return _VAR.sub(replace, value)


def interpolate_all(node: Any, env: Mapping[str, str], where: str) -> Any:
    """Every string of a parsed document interpolated; `where` names the key of each."""
    if isinstance(node, str):
        return interpolate(node, env, where)
    if isinstance(node, list):
        return [interpolate_all(item, env, where) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_all(value, env, f"{where}.{key}") for key, value in node.items()}
    return node


def duration_ns(value: Any, where: str) -> int:
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{where}: {value!r} is not a duration like 1s, 500ms or 1m30s.")
    return sum(int(float(n) * _UNIT_NS[u]) for n, u in parts)


def as_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise ConfigError(f"{where}: expected a string or a list of strings.")


def as_mapping(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {
            str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        out = {}
        for item in value:
            key, _, val = str(item).partition("=")
            out[key] = val
        return out
    raise ConfigError(f"{where}: expected a mapping or a list of KEY=VALUE.")


def mount(spec: Any, base: Path, volumes: set[str], where: str) -> Mount:
    if not isinstance(spec, str):
        raise ConfigError(f"{where}: only the short syntax SOURCE:TARGET[:ro] is supported.")
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"{where}: {spec!r} is not SOURCE:TARGET[:ro].")
    source, target = parts[0], parts[1]
    read_only = len(parts) == 3 and parts[2] == "ro"
    if source.startswith(("/", ".", "~")):
        host = Path(source).expanduser()
        return Mount("bind", str(host if host.is_absolute() else base / host), target, read_only)
    if source not in volumes:
        raise ConfigError(f"{where}: volume {source!r} is not declared under top-level volumes.")
    return Mount("volume", source, target, read_only)


def port(spec: Any, where: str) -> Port:
    parts = str(spec).split(":")
    try:
        if len(parts) == 3:
            return Port(parts[0], int(parts[1]), int(parts[2].split("/")[0]))
        if len(parts) == 2:
            return Port("0.0.0.0", int(parts[0]), int(parts[1].split("/")[0]))  # noqa: S104
    except ValueError:
        pass
    raise ConfigError(f"{where}: {spec!r} is not [IP:]HOST_PORT:CONTAINER_PORT.")


def healthcheck(raw: Any, where: str) -> Healthcheck | None:
    if not raw:
        return None  # the image's own healthcheck applies
    if raw.get("disable"):
        return Healthcheck(["NONE"], 0, 0, 0, 0)
    test = raw.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not isinstance(test, list) or not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise ConfigError(f"{where}.test: expected [CMD, ...] or [CMD-SHELL, '...'].")
    return Healthcheck(
        test=[str(t) for t in test],
        interval_ns=duration_ns(raw.get("interval", "30s"), f"{where}.interval"),
        timeout_ns=duration_ns(raw.get("timeout", "30s"), f"{where}.timeout"),
        retries=int(raw.get("retries", 3)),
        start_period_ns=duration_ns(raw.get("start_period", "0s"), f"{where}.start_period"),
    )


def signal_name(value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    if not _SIGNAL.fullmatch(text):
        raise ConfigError(f"{where}: {value!r} is not a signal name like SIGINT or SIGTERM.")
    return text
