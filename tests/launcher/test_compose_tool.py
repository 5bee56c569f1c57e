"""The stack file is read twice: by the launcher, and by Docker Compose for users who run
`docker-compose -p caracal up` themselves. Debian's Compose (1.29) renders the file with
`docker-compose config`; every service must come out as the launcher applies it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from caracal.launcher.compose import _SERVICE_KEYS, load
from caracal.launcher.compose_model import Service
from caracal.launcher.compose_syntax import duration_ns

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "docker-compose.yml"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("postgres_password", "redis_password", "master_key"):
        (secrets / name).write_text("not-a-real-secret\n")
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CARACAL_SECRETS_DIR": str(secrets),
        "CARACAL_HOST_IO": str(tmp_path / "host-io"),
        "CARACAL_RUNTIME_PORT": "18080",
        "CARACAL_POSTGRES_IMAGE": "caracal-offline/postgres:15-bookworm",
        "CARACAL_REDIS_IMAGE": "caracal-offline/redis:7-bookworm",
        "CARACAL_BASE_IMAGE": "caracal-offline/base:bookworm",
        "CARACAL_STACK_WORKSPACE": "ops",
    }


def compose_config(env: dict[str, str]) -> dict[str, Any]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [tool, "-p", "caracal", "-f", str(FILE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _text(value: str) -> str:
    return value.replace("$$", "$")  # `config` prints the file's escapes as written


def _ns(value: Any) -> int:
    return duration_ns(value, "compose") if value is not None else 0


def _healthcheck(service: Service) -> dict[str, Any] | None:
    h = service.healthcheck
    if h is None:
        return None
    if h.test == ["NONE"]:
        return {"test": ["NONE"]}
    return {
        "test": h.test,
        "interval": h.interval_ns,
        "timeout": h.timeout_ns,
        "retries": h.retries,
        "start_period": h.start_period_ns,
    }


def as_compose_renders(service: Service) -> dict[str, Any]:
    """A launcher service in the shape `docker-compose config` prints (defaults left out)."""
    build = service.build
    values: dict[str, Any] = {
        "image": service.image,
        "build": build
        and {"context": str(build.context), "dockerfile": build.dockerfile, "args": build.args},
        "volumes": [
            f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in service.mounts
        ],
        "ports": [f"{p.host_ip}:{p.host_port}:{p.container_port}/tcp" for p in service.ports],
        "healthcheck": _healthcheck(service),
        "depends_on": {d: {"condition": c} for d, c in service.depends_on.items()},
        "restart": service.restart if service.restart != "no" else None,
        "stop_grace_period": service.stop_timeout_s,
    }
    for key in ("command", "entrypoint", "cap_drop", "security_opt", "tmpfs", "profiles"):
        values[key] = getattr(service, key)
    for key in ("environment", "secrets", "labels", "user", "working_dir", "stop_signal"):
        values[key] = getattr(service, key)
    for key in ("read_only", "tty", "stdin_open", "init"):
        values[key] = getattr(service, key) or None
    return {k: v for k, v in values.items() if v not in (None, [], {})}


def normalised(raw: dict[str, Any]) -> dict[str, Any]:
    """`docker-compose config`'s rendering of one service, in the same shape."""
    out = dict(raw)
    for key in ("command", "entrypoint"):
        if key in out:
            out[key] = [_text(str(a)) for a in out[key]]
    if "environment" in out:
        out["environment"] = {k: _text(str(v)) for k, v in out["environment"].items()}
    if "healthcheck" in out and out["healthcheck"].get("test") != ["NONE"]:
        h = out["healthcheck"]
        out["healthcheck"] = {
            "test": [_text(str(t)) for t in h["test"]],
            "interval": _ns(h.get("interval", "30s")),
            "timeout": _ns(h.get("timeout", "30s")),
            "retries": h.get("retries", 3),
            "start_period": _ns(h.get("start_period")),
        }
    if "secrets" in out:
        out["secrets"] = [s["source"] for s in out["secrets"]]
    if "stop_grace_period" in out:
        out["stop_grace_period"] = _ns(out["stop_grace_period"]) // 10**9
    return out


def test_compose_renders_every_service_as_the_launcher_applies_it(env: dict[str, str]) -> None:
    rendered = compose_config(env)
    stack = load(FILE, env, project="caracal")
    assert sorted(rendered["services"]) == sorted(stack.services)
    for name, service in stack.services.items():
        assert normalised(rendered["services"][name]) == as_compose_renders(service), name
    # The file's own values came through: images, the published port, the workspace.
    runtime = rendered["services"]["runtime"]
    assert runtime["ports"] == ["127.0.0.1:18080:8080/tcp"]
    assert runtime["environment"]["CARACAL_STACK_WORKSPACE"] == "ops"
    assert rendered["services"]["postgres"]["image"] == env["CARACAL_POSTGRES_IMAGE"]


def test_compose_declares_the_same_volumes_and_secret_files(env: dict[str, str]) -> None:
    rendered = compose_config(env)
    stack = load(FILE, env, project="caracal")
    assert sorted(rendered.get("volumes") or {}) == sorted(stack.volumes)
    assert {k: Path(v["file"]) for k, v in rendered["secrets"].items()} == stack.secrets


def test_the_documented_keys_are_the_supported_keys() -> None:
    """containers/README.md lists the service keys the launcher applies; any other key is an
    error there, so the list must be exactly what the reader accepts."""
    text = (ROOT / "containers" / "README.md").read_text()
    section = text.split("### Service keys the launcher applies", 1)[1].split("\n#", 1)[0]
    listed = re.sub(r"\([^)]*\)", "", section.split("Top level:", 1)[0])  # drop the details
    documented = set(re.findall(r"`([a-z_]+)`", listed))
    assert documented == _SERVICE_KEYS
