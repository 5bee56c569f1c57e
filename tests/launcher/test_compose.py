"""The compose file as the launcher reads it: the repository's own stack, interpolation, and
clear errors for what it cannot apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from caracal.core.errors import ConfigError
from caracal.launcher.compose import load
from caracal.launcher.compose_syntax import duration_ns, interpolate

ROOT = Path(__file__).resolve().parents[2]


def test_the_repository_stack_reads_with_defaults() -> None:
    stack = load(ROOT / "docker-compose.yml", env={})
    assert stack.project == "caracal"
    assert [s.name for s in stack.active()] == ["postgres", "redis", "runtime"]
    assert [s.name for s in stack.active({"interactive"})][-2:] == ["flow", "cli"]
    runtime = stack.services["runtime"]
    assert runtime.image == "caracal/runtime:local"
    assert runtime.build is not None and runtime.build.args["BASE_IMAGE"] == "python:3.12-slim"
    assert [(p.host_ip, p.host_port, p.container_port) for p in runtime.ports] == [
        ("127.0.0.1", 8080, 8080)
    ]
    assert runtime.depends_on == {"postgres": "service_healthy", "redis": "service_healthy"}
    assert stack.services["postgres"].ports == [] and stack.services["redis"].ports == []
    # No secret value travels through the environment: only file paths.
    for service in stack.services.values():
        for key in service.environment:
            assert "PASSWORD" not in key or key.endswith("_FILE"), key
    assert runtime.read_only and runtime.cap_drop == ["ALL"]
    assert "no-new-privileges:true" in runtime.security_opt


def test_images_and_ports_follow_the_environment() -> None:
    env = {
        "CARACAL_POSTGRES_IMAGE": "local/pg:1",
        "CARACAL_RUNTIME_PORT": "9123",
        "CARACAL_SECRETS_DIR": "/srv/secrets",
    }
    stack = load(ROOT / "docker-compose.yml", env=env, project="other")
    assert stack.project == "other"
    assert stack.services["postgres"].image == "local/pg:1"
    assert stack.services["runtime"].ports[0].host_port == 9123
    assert stack.secrets["master_key"] == Path("/srv/secrets/master_key")
    # `$$` is a literal dollar for the container's shell.
    assert "$(cat /run/secrets/redis_password)" in stack.services["redis"].command[-1]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A}", {"A": "1"}, "1"),
        ("$A/b", {"A": "1"}, "1/b"),
        ("$$A", {"A": "1"}, "$A"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env, "f") == expected


def test_a_required_variable_names_itself() -> None:
    with pytest.raises(ConfigError, match="set the token"):
        interpolate("${TOKEN:?set the token}", {}, "f")


def test_durations() -> None:
    assert duration_ns("1m30s", "x") == 90 * 10**9
    assert duration_ns("500ms", "x") == 5 * 10**8
    with pytest.raises(ConfigError, match="not a duration"):
        duration_ns("soon", "x")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("services: [", "not valid YAML"),
        ("name: x\n", "top-level 'services'"),
        ("services:\n  a:\n    image: x\n    privileged: true\n", "unsupported key 'privileged'"),
        ("services:\n  a:\n    image: x\n    depends_on: [b]\n", "unknown service 'b'"),
        (
            "services:\n  a:\n    image: x\n    volumes: ['data:/d']\n",
            "volume 'data' is not declared",
        ),
        (
            "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [a]\n",
            "cycle",
        ),
        ("services:\n  a:\n    image: x\n    ports: ['http']\n", r"is not \[IP:\]HOST_PORT"),
        ("services:\n  a:\n    image: x\nnetworks:\n  n: {}\n", "top-level key 'networks'"),
        ("services:\n  a:\n    image: x\nvolumes:\n  v: {external: true}\n", "volumes.v"),
        (
            "services:\n  a:\n    image: x\n    volumes: [{type: volume, source: v, target: /v}]\n"
            "volumes:\n  v: {}\n",
            "short syntax",
        ),
        (
            "services:\n  a:\n    image: x\n    depends_on: {b: {condition: "
            "service_completed_successfully}}\n  b:\n    image: y\n",
            "condition 'service_completed_successfully' is not supported",
        ),
        ("services:\n  a:\n    image: x\n    stop_signal: 'stop now'\n", "not a signal name"),
        ("services:\n  a:\n    image: x\nsecrets:\n  s: {external: true}\n", "secrets.s"),
    ],
)
def test_what_it_cannot_apply_is_a_config_error(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "compose.yml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load(path, env={})


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--compose-file"):
        load(tmp_path / "nope.yml", env={})
