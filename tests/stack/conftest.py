"""The container stack on a real Docker engine: one stack per test session, under a unique
project name, with its own CARACAL_HOME and runtime port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = {
    "CARACAL_BASE_IMAGE": "caracal-offline/base:bookworm",
    "CARACAL_POSTGRES_IMAGE": "caracal-offline/postgres:15-bookworm",
    "CARACAL_REDIS_IMAGE": "caracal-offline/redis:7-bookworm",
}


def engine_problem() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        return f"no Docker engine ({type(exc).__name__})"
    for variable, default in OFFLINE.items():
        image = os.environ.get(variable, default)
        try:
            client.images.get(image)
        except Exception:
            return f"image {image} is missing (containers/offline/build-images.sh builds it)"
    return None


def require_engine() -> None:
    problem = engine_problem()
    if problem is None:
        return
    message = f"CONTAINER STACK TESTS SKIPPED: {problem}"
    if os.environ.get("CARACAL_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{message} (CARACAL_REQUIRE_DOCKER=1)")
    print(f"\n{'!' * 20} {message} {'!' * 20}", file=sys.stderr)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackEnv:
    project: str
    home: Path
    port: int
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "caracal", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"caracal {' '.join(args)} → {result.returncode}\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        result = self.run(*args, check=True)
        return json.loads(result.stdout)

    def labelled(self, kind: str) -> list[str]:
        """Names (or ids) of engine objects labelled as this project."""
        label = f"com.docker.compose.project={self.project}"
        commands = {
            "container": [
                "docker",
                "ps",
                "-a",
                "--filter",
                f"label={label}",
                "--format",
                "{{.Names}}",
            ],
            "volume": [
                "docker",
                "volume",
                "ls",
                "--filter",
                f"label={label}",
                "--format",
                "{{.Name}}",
            ],
            "network": [
                "docker",
                "network",
                "ls",
                "--filter",
                f"label={label}",
                "--format",
                "{{.Name}}",
            ],
            "image": ["docker", "images", "--filter", f"label={label}", "--format", "{{.ID}}"],
        }
        out = subprocess.run(commands[kind], capture_output=True, text=True, check=True).stdout
        return [line for line in out.splitlines() if line]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEnv]:
    require_engine()
    project = f"caracal-e2e-{uuid.uuid4().hex[:8]}"
    home = tmp_path_factory.mktemp("stack-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CARACAL_") or key in OFFLINE
    }
    for variable, default in OFFLINE.items():
        env.setdefault(variable, default)
    port = _free_port()
    env.update(
        CARACAL_HOME=str(home),
        CARACAL_KEYRING="off",
        CARACAL_PROJECT_NAME=project,
        CARACAL_RUNTIME_PORT=str(port),
        CARACAL_RUNTIME_IMAGE=f"caracal-e2e/runtime:{project}",
        CARACAL_DOCKER_COMPOSE_FILE=str(ROOT / "docker-compose.yml"),
    )
    handle = StackEnv(project, home, port, env)
    try:
        yield handle
    finally:
        handle.run("purge", "--force", timeout=300)
        shutil.rmtree(home, ignore_errors=True)
