"""Caracal installed like a user installs it: the wheel built from this checkout, installed with
pip into a fresh virtualenv in a temporary folder (not the checkout, a clean PYTHONPATH), then
used as the README says: the embedded commands, then the container stack on the real engine
with the offline images, built from the installed distribution itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stack.conftest import OFFLINE, ROOT, _free_port, require_engine

REPOS = "provider:github:resource:repos"
READ = "provider:github:action:read"


@dataclass
class Installed:
    bin: Path
    home: Path
    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "caracal"), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (
            f"caracal {' '.join(args)}: {result.returncode}\n{result.stderr}"
        )
        return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds from this checkout."""
    wheels = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    [built] = wheels.glob("caracal-*.whl")
    return built


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARACAL_", "PYTHON", "VIRTUAL_ENV"))
    }
    return {**env, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Installed]:
    require_engine()
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr
    project = f"caracal-inst-{uuid.uuid4().hex[:8]}"
    env = _clean_env()
    env.update({k: os.environ.get(k, v) for k, v in OFFLINE.items()})
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
        CARACAL_HOME=str(root / "home"),
        CARACAL_KEYRING="off",
        CARACAL_PROJECT_NAME=project,
        CARACAL_RUNTIME_PORT=str(_free_port()),
        CARACAL_RUNTIME_IMAGE=f"caracal-inst/runtime:{project}",
    )
    cwd = root / "work"  # not the checkout: nothing there to find by accident
    cwd.mkdir()
    handle = Installed(venv / "bin", root / "home", cwd, env)
    try:
        yield handle
    finally:
        handle.run("purge", "--force", timeout=300)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_the_readme_install_commands_give_a_working_command(
    wheel: Path, tmp_path: Path, tool: str
) -> None:
    """The README's install section: `pipx install WHEEL`, `uv tool install WHEEL`."""
    bin_dir = tmp_path / "bin"
    env = _clean_env(
        PIPX_HOME=str(tmp_path / "pipx"),
        PIPX_BIN_DIR=str(bin_dir),
        UV_TOOL_DIR=str(tmp_path / "uv-tools"),
        UV_TOOL_BIN_DIR=str(bin_dir),
        CARACAL_HOME=str(tmp_path / "home"),
        CARACAL_KEYRING="off",
    )
    command = (
        [sys.executable, "-m", "pipx", "install", str(wheel)]
        if tool == "pipx"
        else [str(Path(sys.executable).parent / "uv"), "tool", "install", str(wheel)]
    )
    installed = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert installed.returncode == 0, installed.stderr

    def caracal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "caracal"), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    version = caracal("--version")
    assert version.returncode == 0 and version.stdout.startswith("caracal "), version
    created = caracal("workspace", "create", "demo")
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "home" / "workspaces" / "demo").is_dir()


def test_the_wheel_carries_what_an_installation_needs(installed: Installed) -> None:
    site = next((installed.bin.parent / "lib").glob("python3*/site-packages"))
    files = site / "caracal" / "launcher" / "files"
    for name in (
        "docker-compose.yml",
        "containers/runtime/Dockerfile",
        "containers/offline/build-images.sh",
        "containers/offline/postgres-entrypoint.sh",
    ):
        assert (files / name).is_file(), name
    assert (site / "caracal" / "py.typed").is_file()
    [info] = site.glob("caracal-*.dist-info")
    assert any(p.name == "LICENSE" for p in info.rglob("*")), list(info.rglob("*"))


def test_embedded_commands_work_from_the_installation(installed: Installed) -> None:
    version = installed.ok("--version").stdout
    assert version.startswith("caracal "), version
    installed.ok("workspace", "create", "demo")
    installed.ok(
        *("provider", "add", "github", "--base-url", "https://api.github.com"),
        *("--resource", "repos", "--action", "repos:read:GET:/repos"),
    )
    installed.ok("principal", "register", "--kind", "human", "--name", "alice")
    installed.ok("principal", "register", "--kind", "orchestrator", "--name", "planner")
    installed.ok(
        *("policy", "create", "--principal", "planner", "--max-validity", "1h"),
        *("--resource", "provider:github:resource:*", "--action", "provider:github:action:*"),
    )
    issued = json.loads(
        installed.ok(
            *("mandate", "issue", "--issuer", "alice", "--subject", "planner", "--ttl", "30m"),
            *("--resource", REPOS, "--action", READ, "--json"),
        ).stdout
    )
    installed.ok("mandate", "validate", issued["id"], "--action", READ, "--resource", REPOS)
    installed.ok("ledger", "verify")


def test_the_stack_comes_up_from_the_installation(installed: Installed) -> None:
    up = installed.run("up", timeout=900)
    assert up.returncode == 0, up.stderr
    # Built from the installed distribution: the build context is the staged package files.
    staged = installed.home / "stack" / "files"
    assert (staged / "docker-compose.yml").is_file() and (staged / "build" / "wheels").is_dir()
    principals = json.loads(installed.ok("cli", "principal", "list", "--json", timeout=120).stdout)
    assert isinstance(principals, list)
    status = json.loads(installed.ok("status", "--json").stdout)
    assert {
        s["service"]: s["state"] for s in status if s["service"] in ("postgres", "redis", "runtime")
    } == {
        "postgres": "running",
        "redis": "running",
        "runtime": "running",
    }, status
    installed.ok("down", timeout=300)
    installed.ok("purge", "--force", timeout=300)
    left = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={installed.env['CARACAL_PROJECT_NAME']}",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert left == []
