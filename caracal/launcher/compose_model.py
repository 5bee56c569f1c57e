"""The stack as plain data: what the launcher applies through the Docker SDK, as read from
`docker-compose.yml` (services, mounts, ports, health checks) and in dependency order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caracal.core.errors import ConfigError


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
