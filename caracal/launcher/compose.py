"""Reading `docker-compose.yml`: the subset of the Compose format the stack uses, interpolated
and checked, as plain data the launcher applies through the Docker SDK."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from caracal.core.errors import ConfigError
from caracal.launcher.compose_model import Build, Service, Stack
from caracal.launcher.compose_syntax import (
    as_list,
    as_mapping,
    duration_ns,
    healthcheck,
    interpolate_all,
    mount,
    port,
    signal_name,
)

_SERVICE_KEYS = {
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "volumes",
    "ports",
    "healthcheck",
    "depends_on",
    "profiles",
    "secrets",
    "restart",
    "read_only",
    "cap_drop",
    "security_opt",
    "tmpfs",
    "user",
    "tty",
    "stdin_open",
    "labels",
    "working_dir",
    "stop_grace_period",
    "stop_signal",
    "init",
}
_TOP_KEYS = {"name", "version", "services", "volumes", "secrets"}
_CONDITIONS = {"service_started", "service_healthy"}


def _service(name: str, raw: dict[str, Any], stack: Stack, known: set[str], where: str) -> Service:
    unknown = set(raw) - _SERVICE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unsupported key {sorted(unknown)[0]!r}.")
    build = None
    if raw.get("build") is not None:
        b = raw["build"] if isinstance(raw["build"], dict) else {"context": raw["build"]}
        build = Build(
            context=(stack.path.parent / str(b.get("context", "."))).resolve(),
            dockerfile=str(b.get("dockerfile", "Dockerfile")),
            args=as_mapping(b.get("args"), f"{where}.build.args"),
        )
    image = raw.get("image") or f"{stack.project}-{name}"
    depends = raw.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {d: {"condition": "service_started"} for d in depends}
    for dep, spec in depends.items():
        if dep not in known:
            raise ConfigError(f"{where}.depends_on: unknown service {dep!r}.")
        condition = (spec or {}).get("condition", "service_started")
        if condition not in _CONDITIONS:
            raise ConfigError(
                f"{where}.depends_on.{dep}: condition {condition!r} is not supported "
                f"(use {' or '.join(sorted(_CONDITIONS))})."
            )
    for secret in raw.get("secrets") or []:
        if not isinstance(secret, str):
            raise ConfigError(
                f"{where}.secrets: only the short syntax (a secret's name) is supported."
            )
        if secret not in stack.secrets:
            raise ConfigError(
                f"{where}.secrets: {secret!r} is not declared under top-level secrets."
            )
    return Service(
        name=name,
        image=str(image),
        build=build,
        command=as_list(raw.get("command"), f"{where}.command") or None,
        entrypoint=as_list(raw.get("entrypoint"), f"{where}.entrypoint") or None,
        environment=as_mapping(raw.get("environment"), f"{where}.environment"),
        mounts=[
            mount(m, stack.path.parent, set(stack.volumes), f"{where}.volumes")
            for m in raw.get("volumes") or []
        ],
        ports=[port(p, f"{where}.ports") for p in raw.get("ports") or []],
        healthcheck=healthcheck(raw.get("healthcheck"), f"{where}.healthcheck"),
        depends_on={
            d: str((c or {}).get("condition", "service_started")) for d, c in depends.items()
        },
        profiles=as_list(raw.get("profiles"), f"{where}.profiles"),
        secrets=[str(s) for s in raw.get("secrets") or []],
        restart=str(raw.get("restart", "no")),
        read_only=bool(raw.get("read_only", False)),
        cap_drop=as_list(raw.get("cap_drop"), f"{where}.cap_drop"),
        security_opt=as_list(raw.get("security_opt"), f"{where}.security_opt"),
        tmpfs=as_list(raw.get("tmpfs"), f"{where}.tmpfs"),
        user=str(raw["user"]) if raw.get("user") is not None else None,
        tty=bool(raw.get("tty", False)),
        stdin_open=bool(raw.get("stdin_open", False)),
        init=bool(raw.get("init", False)),
        labels=as_mapping(raw.get("labels"), f"{where}.labels"),
        working_dir=raw.get("working_dir"),
        stop_signal=signal_name(raw.get("stop_signal"), f"{where}.stop_signal"),
        stop_timeout_s=(
            -(-duration_ns(raw["stop_grace_period"], f"{where}.stop_grace_period") // 10**9)
            if raw.get("stop_grace_period") is not None
            else None
        ),
    )


def load(path: Path, env: Mapping[str, str] | None = None, project: str | None = None) -> Stack:
    """Read and check a compose file; every problem is a ConfigError naming file and key."""
    env = dict(os.environ if env is None else env)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist; pass --compose-file or set CARACAL_DOCKER_COMPOSE_FILE."
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        raise ConfigError(f"{path}: expected a top-level 'services' mapping.")
    raw = interpolate_all(
        {k: v for k, v in raw.items() if not str(k).startswith("x-")}, env, str(path)
    )
    unknown = sorted(set(map(str, raw)) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unsupported top-level key {unknown[0]!r}.")
    for key, spec in (raw.get("volumes") or {}).items():
        if spec:  # driver, external, name...: the launcher only makes plain local volumes
            raise ConfigError(
                f"{path}: volumes.{key}: options are not supported; declare it as {{}}."
            )
    name = project or env.get("CARACAL_PROJECT_NAME") or str(raw.get("name") or "caracal")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ConfigError(
            f"{path}: project name {name!r} must be lowercase letters, digits, - or _."
        )
    secrets = {}
    for key, spec in (raw.get("secrets") or {}).items():
        if not isinstance(spec, dict) or set(spec) != {"file"}:
            raise ConfigError(f"{path}: secrets.{key} needs a 'file' and nothing else.")
        file = Path(str(spec["file"])).expanduser()
        secrets[str(key)] = file if file.is_absolute() else (path.parent / file)
    stack = Stack(name, path, {}, [str(v) for v in (raw.get("volumes") or {})], secrets)
    known = {str(n) for n in raw["services"]}
    for svc_name, svc in raw["services"].items():
        if not isinstance(svc, dict):
            raise ConfigError(f"{path}: services.{svc_name} must be a mapping.")
        stack.services[str(svc_name)] = _service(
            str(svc_name), svc, stack, known, f"{path}: services.{svc_name}"
        )
    stack.ordered(list(stack.services.values()))  # reject cycles early
    return stack
