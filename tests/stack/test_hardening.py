"""Container hardening on the real stack: who runs, with which privileges, on which file system,
reachable from where, and what `docker inspect` gives away; then every known escape attempt
typed into the restricted shell of the running runtime container.

The stack is the session's (tests/stack/conftest.py). This file sorts before test_stack.py, so
it brings the stack up itself (`up` is idempotent), never takes it down, and removes only the
containers it created (the interactive `flow` and `cli` services), leaving the stack as it
found it for test_stack.py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from caracal.launcher.compose import load
from caracal.launcher.compose_model import Stack
from caracal.launcher.state import StackState
from tests.shell.escapes import ESCAPE_ATTEMPTS
from tests.stack.conftest import ROOT, StackEnv

pytestmark = pytest.mark.docker

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
SERVICES = ("postgres", "redis", "runtime", "flow", "cli")
OWN_IMAGE = ("runtime", "flow", "cli")  # the services running the runtime image built here
CANARY = "/tmp/pwned"
# Lines a system shell would turn into `touch /tmp/pwned`: the file must never appear.
CANARY_ATTEMPTS = [
    f"touch {CANARY}",
    f"sh -c 'touch {CANARY}'",
    f"bash -c 'touch {CANARY}'",
    f"$(touch {CANARY})",
    f"principal show $(touch {CANARY})",
    f"principal show `touch {CANARY}`",
    f"principal list; touch {CANARY}",
    f"principal list && touch {CANARY}",
    f"principal list || touch {CANARY}",
    f"principal list | tee {CANARY}",
    f"principal list > {CANARY}",
    f"!touch {CANARY}",
    f"exec touch {CANARY}",
    f"python3 -c \"open('{CANARY}', 'w')\"",
    f"caracal shell -c 'touch {CANARY}'",
]
# A pipe splits lines at "\n" by definition, so those attempts go through `shell -c` (argv);
# a NUL cannot be in argv, so that one goes through the pipe, like every other attempt.
ONE_LINE_ATTEMPTS = [
    *(line for line in ESCAPE_ATTEMPTS if "\n" in line),
    f"principal list\ntouch {CANARY}",
    f"sh -c 'touch {CANARY}'",
    f"$(touch {CANARY})",
]
PIPED_ATTEMPTS = [line for line in [*ESCAPE_ATTEMPTS, *CANARY_ATTEMPTS] if "\n" not in line]


@dataclass
class Hardened:
    stack: StackEnv
    compose: Stack
    containers: dict[str, Any]  # service -> docker Container
    secrets: dict[str, str] = field(default_factory=dict)  # secret file name -> value

    def attrs(self, service: str) -> dict[str, Any]:
        container = self.containers[service]
        container.reload()
        return dict(container.attrs)

    def exec(self, service: str, *command: str, **options: Any) -> tuple[int, str]:
        code, output = self.containers[service].exec_run(list(command), **options)
        return int(code), output.decode(errors="replace")

    def processes(self, service: str) -> dict[str, dict[str, str]]:
        """Every process in the container: pid -> the fields of /proc/PID/status."""
        script = 'for s in /proc/[0-9]*/status; do echo "== $s"; cat "$s"; done 2>/dev/null'
        code, out = self.exec(service, "sh", "-c", script)
        assert code == 0, out
        found: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for line in out.splitlines():
            if line.startswith("== /proc/"):
                current = found.setdefault(line.split("/")[2], {})
            elif current is not None and ":" in line:
                key, _, value = line.partition(":")
                current[key] = value.strip()
        # Left out: the `cat`s of this probe, and runc's own init, which briefly runs as root
        # while it sets up an exec (a health check, this probe) and then becomes the exec'd
        # program with the container's user, capabilities and no-new-privileges.
        return {
            pid: status
            for pid, status in found.items()
            if status.get("Name") != "cat" and not status.get("Name", "").startswith("runc:")
        }


@pytest.fixture(scope="module")
def hardened(stack: StackEnv) -> Iterator[Hardened]:
    import docker

    result = stack.run("up", timeout=900)
    assert result.returncode == 0, result.stderr
    client = docker.from_env(timeout=60)

    def ours() -> dict[str, Any]:
        found = client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={stack.project}"}
        )
        return {c.labels.get(SERVICE_LABEL): c for c in found}

    before = set(ours())
    # The interactive services as the launcher creates them (`caracal flow` does up(["flow"])).
    code = "from caracal.cli.stack import launcher; launcher(None).up(['flow', 'cli'], timeout=300)"
    made = subprocess.run(
        [sys.executable, "-c", code],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    state = StackState(stack.home / "stack" / stack.project)
    compose = load(
        ROOT / "docker-compose.yml", {**state.environment(), **stack.env}, project=stack.project
    )
    secrets = {path.name: path.read_text().strip() for path in sorted(state.secrets_dir.iterdir())}
    assert set(secrets) == {"postgres_password", "redis_password", "master_key"}, secrets
    containers = ours()
    assert set(containers) >= set(SERVICES), containers
    try:
        yield Hardened(stack, compose, containers, secrets)
    finally:
        for service, container in ours().items():
            if service not in before:
                container.remove(force=True)


def _capability_mask(value: str) -> int:
    return int(value, 16)


def test_the_compose_file_asks_for_the_hardening(hardened: Hardened) -> None:
    """What the other tests hold the containers to: weakening the file fails here first."""
    services = hardened.compose.services
    for name in SERVICES:
        assert "no-new-privileges:true" in services[name].security_opt, name
    for name in ("redis", "runtime", "flow", "cli"):
        assert services[name].cap_drop == ["ALL"], name
        assert services[name].read_only, name
    assert [(p.host_ip, p.container_port) for p in services["runtime"].ports] == [
        ("127.0.0.1", 8080)
    ]
    for name in ("postgres", "redis", "flow", "cli"):
        assert services[name].ports == [], name


@pytest.mark.parametrize("service", SERVICES)
def test_nothing_runs_as_root(hardened: Hardened, service: str) -> None:
    config_user = hardened.attrs(service)["Config"]["User"]
    if service in OWN_IMAGE:
        assert config_user == "10001:10001", f"{service} is configured to run as {config_user!r}"
    processes = hardened.processes(service)
    assert processes, f"no process found in {service}"
    for pid, status in processes.items():
        uids = status["Uid"].split()
        gids = status["Gid"].split()
        assert "0" not in uids, f"{service}: process {pid} ({status['Name']}) has uid {uids}"
        assert "0" not in gids, f"{service}: process {pid} ({status['Name']}) has gid {gids}"
        if service in OWN_IMAGE:
            assert set(uids) == {"10001"}, f"{service}: process {pid} runs as {uids}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_new_privileges(hardened: Hardened, service: str) -> None:
    options = hardened.attrs(service)["HostConfig"].get("SecurityOpt") or []
    assert "no-new-privileges:true" in options, f"{service}: SecurityOpt is {options}"
    for pid, status in hardened.processes(service).items():
        assert status["NoNewPrivs"] == "1", f"{service}: process {pid} may gain privileges"


@pytest.mark.parametrize("service", SERVICES)
def test_capabilities(hardened: Hardened, service: str) -> None:
    host = hardened.attrs(service)["HostConfig"]
    declared = hardened.compose.services[service].cap_drop
    assert (host.get("CapDrop") or []) == declared, f"{service}: CapDrop {host.get('CapDrop')}"
    assert not host.get("CapAdd"), f"{service}: CapAdd {host.get('CapAdd')}"
    assert not host.get("Privileged"), f"{service} is privileged"
    for pid, status in hardened.processes(service).items():
        # Non-root processes hold no capability, whatever the bounding set allows.
        for field_name in ("CapEff", "CapPrm", "CapAmb"):
            held = _capability_mask(status[field_name])
            assert held == 0, f"{service}: process {pid} has {field_name} {held:#x}"
        if declared == ["ALL"]:
            bounding = _capability_mask(status["CapBnd"])
            assert bounding == 0, f"{service}: process {pid} could regain {bounding:#x}"


@pytest.mark.parametrize("service", ["redis", "runtime", "flow", "cli"])
def test_read_only_root_file_system(hardened: Hardened, service: str) -> None:
    assert hardened.attrs(service)["HostConfig"]["ReadonlyRootfs"] is True, service
    code, mounts = hardened.exec(service, "cat", "/proc/mounts")
    assert code == 0, mounts
    root = [line.split() for line in mounts.splitlines() if line.split()[1:2] == ["/"]]
    assert root and root[-1][3].split(",")[0] == "ro", f"{service}: / is mounted {root}"
    # /var/tmp is world-writable on the image: only the read-only mount stops this write.
    code, out = hardened.exec(service, "touch", "/var/tmp/pwned")
    assert code != 0 and "Read-only file system" in out, f"{service} wrote /var/tmp: {out!r}"


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_runtime_is_published_and_only_on_loopback(
    hardened: Hardened, service: str
) -> None:
    attrs = hardened.attrs(service)
    bindings = {
        inner: [(b["HostIp"], b["HostPort"]) for b in found or []]
        for inner, found in ((attrs["NetworkSettings"].get("Ports") or {}).items())
    }
    published = {inner: found for inner, found in bindings.items() if found}
    if service == "runtime":
        assert published == {"8080/tcp": [("127.0.0.1", str(hardened.stack.port))]}, published
    else:
        assert published == {}, f"{service} is published on the host: {published}"
        assert not attrs["HostConfig"].get("PortBindings"), attrs["HostConfig"]["PortBindings"]
    assert attrs["HostConfig"]["NetworkMode"] == f"{hardened.stack.project}_default"


def test_redis_refuses_unauthenticated_clients(hardened: Hardened) -> None:
    # Over the stack network, by the service name, as any other container would connect.
    code, out = hardened.exec("redis", "redis-cli", "-h", "redis", "ping")
    assert "NOAUTH" in out, f"unauthenticated PING answered {out!r} (exit {code})"
    code, out = hardened.exec("redis", "redis-cli", "-h", "redis", "get", "anything")
    assert "NOAUTH" in out, out
    # The password from the secret file works: the refusal above is authentication.
    code, out = hardened.exec(
        "redis",
        "redis-cli",
        "-h",
        "redis",
        "ping",
        environment={"REDISCLI_AUTH": hardened.secrets["redis_password"]},
    )
    assert out.strip() == "PONG", out


def test_postgresql_refuses_connections_without_the_password(hardened: Hardened) -> None:
    query = ["psql", "-w", "-h", "postgres", "-U", "caracal", "-d", "caracal", "-tAc", "select 1"]
    code, out = hardened.exec("postgres", *query)
    assert code != 0 and "password" in out, f"passwordless connection: {out!r}"
    code, out = hardened.exec(
        "postgres", *query, environment={"PGPASSWORD": hardened.secrets["postgres_password"]}
    )
    assert (code, out.strip()) == (0, "1"), out


def _where(value: str, node: Any, path: str = "") -> list[str]:
    """JSON paths under `node` whose text contains `value`."""
    if isinstance(node, dict):
        return [hit for key, child in node.items() for hit in _where(value, child, f"{path}.{key}")]
    if isinstance(node, list):
        return [hit for i, child in enumerate(node) for hit in _where(value, child, f"{path}[{i}]")]
    return [path or "."] if value in str(node) else []


@pytest.mark.parametrize("service", SERVICES)
def test_no_secret_in_docker_inspect(hardened: Hardened, service: str) -> None:
    attrs = hardened.attrs(service)
    config = attrs["Config"]
    image = hardened.containers[service].client.images.get(attrs["Image"]).attrs
    places = {
        "Config.Env": config.get("Env"),
        "Args": attrs.get("Args"),
        "Path": attrs.get("Path"),
        "Config.Cmd": config.get("Cmd"),
        "Config.Entrypoint": config.get("Entrypoint"),
        "Config.Labels": config.get("Labels"),
        "Config.Healthcheck": config.get("Healthcheck"),
        "the whole container inspect": attrs,
        "the image inspect": image,
    }
    top = hardened.containers[service].top(ps_args="-o pid,args")
    places["the container's process list"] = top.get("Processes")
    for name, value in hardened.secrets.items():
        assert len(value) >= 24, name
        for place, node in places.items():
            hits = _where(value, node)
            assert not hits, f"the {name} secret appears in {service}'s {place}: {hits}"
    # The variables point at files; the values stay in /run/secrets.
    env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    if service in OWN_IMAGE:
        assert env["CARACAL_MASTER_KEY_FILE"] == "/run/secrets/master_key"
        assert "CARACAL_MASTER_KEY" not in env and "CARACAL_REDIS_PASSWORD" not in env


def test_host_files_are_private_and_each_container_reads_its_own_secrets(
    hardened: Hardened,
) -> None:
    """CARACAL_HOME was 0755, host-io 0777 (anyone on the host could plant files for a
    restore or an import) and the secret files 0644. Now folders are 0700 and files 0600; each
    container reads its secrets from a copy owned by its own user, and the Caracal containers
    own the host I/O folder."""
    import os
    import stat as stat_module

    home = hardened.stack.home
    state = StackState(home / "stack" / hardened.stack.project)

    def mode(path: Any) -> int:
        return stat_module.S_IMODE(os.lstat(path).st_mode)

    folders = [home, home / "stack", state.root, state.host_io]
    folders += [p for p in state.root.rglob("*") if p.is_dir()]
    files = [p for p in state.root.rglob("*") if p.is_file()]
    assert len(files) >= 3 + 3 + 3 + 1 + 1, files  # secrets, runtime's, flow's, cli's, pg, redis
    assert {str(p): mode(p) for p in folders if mode(p) != 0o700} == {}
    assert {str(p): mode(p) for p in files if mode(p) != 0o600} == {}
    if os.geteuid() == 0:
        assert os.stat(state.host_io).st_uid == 10001
    print(f"\nPRIVATE: {len(folders)} folders 0700, {len(files)} files 0600 under {home}")
    expected = {"runtime": "10001", "cli": "10001", "postgres": None, "redis": None}
    for service, owner in expected.items():
        for name in hardened.compose.services[service].secrets:
            code, out = hardened.exec(service, "stat", "-c", "%a %u", f"/run/secrets/{name}")
            assert code == 0, out
            file_mode, uid = out.split()
            assert file_mode == "600", (service, name, out)
            code, who = hardened.exec(service, "id", "-u")
            assert uid == who.strip() and (owner is None or uid == owner), (service, name, out)
    # The runtime container still writes into the host I/O folder (as its own user).
    code, out = hardened.exec("runtime", "sh", "-c", "touch /caracal-host-io/.probe && echo ok")
    assert code == 0 and "ok" in out, out
    (state.host_io / ".probe").unlink()


def test_shell_escape_attempts_run_nothing_in_the_runtime_container(hardened: Hardened) -> None:
    stack = hardened.stack
    code, out = hardened.exec("runtime", "sh", "-c", f"test -e {CANARY} && echo present || true")
    assert out.strip() == "", f"{CANARY} exists before the attempts"
    # The probe can see a file created there (the runtime's /tmp is a writable tmpfs).
    code, out = hardened.exec("runtime", "sh", "-c", f"touch {CANARY}-probe && ls {CANARY}-probe")
    assert code == 0 and out.strip() == f"{CANARY}-probe", out
    hardened.exec("runtime", "rm", "-f", f"{CANARY}-probe")

    # Every attempt as a line of `caracal cli` (the shell reading piped lines), then one real
    # command that proves the shell was still taking lines at the end.
    lines = [*PIPED_ATTEMPTS, "workspace current --json"]
    script = "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogateescape")
    piped = subprocess.run(
        [sys.executable, "-m", "caracal", "cli"],
        input=script,
        capture_output=True,
        env=stack.env,
        timeout=300,
        cwd=ROOT,
    )
    stderr = piped.stderr.decode(errors="replace")
    stdout = piped.stdout.decode(errors="replace")
    assert piped.returncode == 0, stderr
    refusals = [line for line in stderr.splitlines() if line.startswith("error: ")]
    exits = [line for line in stderr.splitlines() if line == "[exit 2]"]
    assert len(refusals) == len(exits) == len(PIPED_ATTEMPTS), stderr
    assert json.loads(stdout)["store"].startswith("PostgreSQL"), stdout  # nothing else printed
    for noise in ("uid=", "Traceback", "pwned"):
        assert noise not in stdout, stdout

    # The attempts a pipe cannot carry as one line, as `caracal cli shell -c LINE`.
    for line in ONE_LINE_ATTEMPTS:
        one = stack.run("cli", "shell", "-c", line, timeout=120)
        assert one.returncode == 2, (line, one.stdout, one.stderr)
        assert one.stdout == "" and one.stderr.startswith("error: "), (line, one.stderr)

    code, out = hardened.exec("runtime", "sh", "-c", f"ls -a /tmp; test -e {CANARY}")
    assert code != 0 and "pwned" not in out, f"an escape attempt created {CANARY}:\n{out}"
    refused = len(PIPED_ATTEMPTS) + len(ONE_LINE_ATTEMPTS)
    print(
        f"\nrestricted shell in the runtime container: {refused} escape attempts refused "
        f"({len(ESCAPE_ATTEMPTS)} from tests/shell/escapes.py, {refused - len(ESCAPE_ATTEMPTS)} "
        f"canary lines aimed at {CANARY}), 0 executed"
    )
