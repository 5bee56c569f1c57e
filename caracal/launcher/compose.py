"""Reading `docker-compose.yml`: the subset of the Compose format the stack uses, interpolated
and checked, as plain data the launcher applies through the Docker SDK."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from caracal.core.errors import ConfigError

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)")
_UNIT_NS = {"us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60 * 10**9, "h": 3600 * 10**9}
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
_SIGNAL = re.compile(r"SIG[A-Z0-9]+(?:[+-]\d+)?|\d+")


@dataclass(frozen=True)
class Healthcheck:
    test: list[str]
    interval_ns: int
    timeout_ns: int
    retries: int
    start_period_ns: int

    def to_docker(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "interval": self.interval_ns,
            "timeout": self.timeout_ns,
            "retries": self.retries,
            "start_period": self.start_period_ns,
        }


@dataclass(frozen=True)
class Build:
    context: Path
    dockerfile: str
    args: dict[str, str]


@dataclass(frozen=True)
class Mount:
    """A named volume (`source` is the volume's key in the file) or a host bind mount."""

    kind: str  # "volume" | "bind"
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: int
    container_port: int


@dataclass
class Service:
    name: str
    image: str
    build: Build | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    healthcheck: Healthcheck | None = None
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    profiles: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    restart: str = "no"
    read_only: bool = False
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    user: str | None = None
    tty: bool = False
    stdin_open: bool = False
    init: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    stop_signal: str | None = None
    stop_timeout_s: int | None = None

    def config_hash(self, image_id: str, secret_files: Mapping[str, Path]) -> str:
        """Changes whenever the container would be created differently: spec, image, secrets."""
        spec = {k: v for k, v in self.__dict__.items() if k != "build"}
        spec["image_id"] = image_id
        spec["secret_files"] = {k: str(v) for k, v in sorted(secret_files.items())}
        raw = json.dumps(spec, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Stack:
    project: str
    path: Path
    services: dict[str, Service]
    volumes: list[str]
    secrets: dict[str, Path]  # secret name -> host file

    def active(self, profiles: set[str] | frozenset[str] = frozenset()) -> list[Service]:
        """Services that run for these profiles, dependencies before dependents."""
        chosen = [s for s in self.services.values() if not s.profiles or set(s.profiles) & profiles]
        return self.ordered(chosen)

    def ordered(self, services: list[Service]) -> list[Service]:
        done: list[Service] = []
        seen: set[str] = set()

        def visit(service: Service, trail: tuple[str, ...]) -> None:
            if service.name in seen:
                return
            if service.name in trail:
                raise ConfigError(f"{self.path}: depends_on forms a cycle at {service.name!r}.")
            for dep in service.depends_on:
                visit(self.services[dep], (*trail, service.name))
            seen.add(service.name)
            done.append(service)

        for service in services:
            visit(service, ())
        return done


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


def _walk(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, where)
    if isinstance(node, list):
        return [_walk(item, env, where) for item in node]
    if isinstance(node, dict):
        return {key: _walk(value, env, f"{where}.{key}") for key, value in node.items()}
    return node


def duration_ns(value: Any, where: str) -> int:
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{where}: {value!r} is not a duration like 1s, 500ms or 1m30s.")
    return sum(int(float(n) * _UNIT_NS[u]) for n, u in parts)


def _as_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise ConfigError(f"{where}: expected a string or a list of strings.")


def _mapping(value: Any, where: str) -> dict[str, str]:
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


def _mount(spec: Any, base: Path, volumes: set[str], where: str) -> Mount:
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


def _port(spec: Any, where: str) -> Port:
    parts = str(spec).split(":")
    try:
        if len(parts) == 3:
            return Port(parts[0], int(parts[1]), int(parts[2].split("/")[0]))
        if len(parts) == 2:
            return Port("0.0.0.0", int(parts[0]), int(parts[1].split("/")[0]))  # noqa: S104
    except ValueError:
        pass
    raise ConfigError(f"{where}: {spec!r} is not [IP:]HOST_PORT:CONTAINER_PORT.")


def _healthcheck(raw: Any, where: str) -> Healthcheck | None:
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


def _signal(value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    if not _SIGNAL.fullmatch(text):
        raise ConfigError(f"{where}: {value!r} is not a signal name like SIGINT or SIGTERM.")
    return text


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
            args=_mapping(b.get("args"), f"{where}.build.args"),
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
        command=_as_list(raw.get("command"), f"{where}.command") or None,
        entrypoint=_as_list(raw.get("entrypoint"), f"{where}.entrypoint") or None,
        environment=_mapping(raw.get("environment"), f"{where}.environment"),
        mounts=[
            _mount(m, stack.path.parent, set(stack.volumes), f"{where}.volumes")
            for m in raw.get("volumes") or []
        ],
        ports=[_port(p, f"{where}.ports") for p in raw.get("ports") or []],
        healthcheck=_healthcheck(raw.get("healthcheck"), f"{where}.healthcheck"),
        depends_on={
            d: str((c or {}).get("condition", "service_started")) for d, c in depends.items()
        },
        profiles=_as_list(raw.get("profiles"), f"{where}.profiles"),
        secrets=[str(s) for s in raw.get("secrets") or []],
        restart=str(raw.get("restart", "no")),
        read_only=bool(raw.get("read_only", False)),
        cap_drop=_as_list(raw.get("cap_drop"), f"{where}.cap_drop"),
        security_opt=_as_list(raw.get("security_opt"), f"{where}.security_opt"),
        tmpfs=_as_list(raw.get("tmpfs"), f"{where}.tmpfs"),
        user=str(raw["user"]) if raw.get("user") is not None else None,
        tty=bool(raw.get("tty", False)),
        stdin_open=bool(raw.get("stdin_open", False)),
        init=bool(raw.get("init", False)),
        labels=_mapping(raw.get("labels"), f"{where}.labels"),
        working_dir=raw.get("working_dir"),
        stop_signal=_signal(raw.get("stop_signal"), f"{where}.stop_signal"),
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
    raw = _walk({k: v for k, v in raw.items() if not str(k).startswith("x-")}, env, str(path))
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
