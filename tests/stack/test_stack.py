"""End to end on a real engine, in order: up, the product CLI inside, Flow attached in a real
terminal, logs, down keeps data, reset drops it, purge removes exactly what is ours."""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.stack.conftest import StackEnv
from tests.support.tmux import terminal, tmux_available

pytestmark = pytest.mark.docker

READ = "provider:github:action:read"
REPOS = "provider:github:resource:repos"


def _status(stack: StackEnv) -> dict[str, dict[str, object]]:
    return {s["service"]: s for s in stack.json("status", "--json")}


STAGE_LABEL = "label=org.caracal.build-stage=install"


def _stages() -> set[str]:
    """Untagged install-stage images of the runtime build (ours or anyone's)."""
    out = subprocess.run(
        ["docker", "images", "-q", "--filter", "dangling=true", "--filter", STAGE_LABEL],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_up_brings_every_service_to_healthy(stack: StackEnv) -> None:
    stages = _stages()
    result = stack.run("up", timeout=900)
    assert result.returncode == 0, result.stderr
    status = _status(stack)
    for service in ("postgres", "redis", "runtime"):
        assert status[service]["state"] == "running", status
        assert status[service]["health"] == "healthy", status
    # Only the runtime is published, and only on the loopback address.
    assert status["postgres"]["ports"] == [] and status["redis"]["ports"] == []
    assert status["runtime"]["ports"] == [f"127.0.0.1:{stack.port}->8080/tcp"]
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/health", timeout=5) as reply:
        health = json.load(reply)
    assert health["dependencies"]["store"]["ok"] and health["dependencies"]["redis"]["ok"]
    # The build cleaned up after itself: no install stage left behind.
    assert _stages() <= stages
    # Idempotent: a second `up` changes nothing and still succeeds.
    before = stack.labelled("container")
    assert stack.run("up", timeout=300).returncode == 0
    assert stack.labelled("container") == before


def _compose(stack: StackEnv, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **stack.env,
        "CARACAL_SECRETS_DIR": str(stack.home / "stack" / stack.project / "secrets"),
        "CARACAL_HOST_IO": str(stack.home / "host-io"),
    }
    return subprocess.run(
        [
            "docker-compose",
            "-p",
            stack.project,
            "-f",
            stack.env["CARACAL_DOCKER_COMPOSE_FILE"],
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (apt-get install docker-compose)",
)
def test_docker_compose_sees_the_stack_the_launcher_made(stack: StackEnv) -> None:
    # `ps -q` rather than the table: the table wraps names to the terminal's width.
    listed = _compose(stack, "ps", "-q")
    assert listed.returncode == 0, listed.stderr
    ids = listed.stdout.split()
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{.Name}} {{.State.Health.Status}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = dict(line.lstrip("/").split() for line in inspected.stdout.splitlines())
    assert sorted(rows) == sorted(stack.labelled("container")), listed.stdout
    for name, health in rows.items():
        assert health == "healthy", (name, health)
    services = _compose(stack, "ps", "--services", "--filter", "status=running")
    assert set(services.stdout.split()) == {"postgres", "redis", "runtime"}, services


def test_status_exits_8_naming_a_stopped_service(stack: StackEnv) -> None:
    healthy = stack.run("status", "--json")
    assert healthy.returncode == 0, healthy.stderr
    states = {s["service"]: s["state"] for s in json.loads(healthy.stdout)}
    assert states["flow"] == states["cli"] == "not started", states
    subprocess.run(["docker", "stop", f"{stack.project}-redis-1"], check=True, capture_output=True)
    try:
        down = stack.run("status", "--json")
        assert down.returncode == 8, down
        assert {s["service"]: s["state"] for s in json.loads(down.stdout)}["redis"] == "exited"
        assert "redis is exited" in down.stderr and "caracal up" in down.stderr
        table = stack.run("status")
        assert table.returncode == 8 and "redis" in table.stderr
    finally:
        assert stack.run("up", timeout=300).returncode == 0
    assert stack.run("status").returncode == 0


def test_cli_forwards_the_variable_a_command_names(stack: StackEnv) -> None:
    """`--credential-env VAR` reads VAR where the command runs: the container. The launcher
    passes the host's VAR into that one command's environment, not onto its command line."""
    token = "e2e-token-" + stack.project
    env = {**stack.env, "CARACAL_E2E_TOKEN": token}
    args = ["provider", "add", "forwarded", "--base-url", "http://127.0.0.1:9", "--auth"]
    args += ["bearer", "--credential-env", "CARACAL_E2E_TOKEN", "--resource", "repos"]
    args += ["--action", "repos:read"]
    without = stack.run("cli", *args)
    assert without.returncode != 0 and "CARACAL_E2E_TOKEN" in without.stderr
    added = subprocess.run(
        [sys.executable, "-m", "caracal", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    shown = stack.json("cli", "provider", "show", "forwarded", "--json")
    assert shown["credential"] == "set", shown
    inspected = subprocess.run(
        ["docker", "inspect", f"{stack.project}-runtime-1"], capture_output=True, text=True
    )
    assert token not in inspected.stdout
    stack.run("cli", "provider", "remove", "forwarded", "--yes")


def test_cli_runs_product_commands_on_postgresql_inside(stack: StackEnv) -> None:
    current = stack.json("cli", "workspace", "current", "--json")
    assert current["store"].startswith("PostgreSQL"), current
    stack.run("cli", "principal", "register", "--kind", "human", "--name", "alice", check=True)
    principals = stack.json("cli", "principal", "list", "--json")
    assert [p["name"] for p in principals] == ["alice"]
    missing = stack.run("cli", "principal", "show", "nobody")
    assert missing.returncode == 3 and "nobody" in missing.stderr


def test_a_mandate_issued_through_cli_validates(stack: StackEnv) -> None:
    stack.run(
        "cli",
        "provider",
        "add",
        "github",
        "--base-url",
        "https://api.github.com",
        "--resource",
        "repos",
        "--action",
        "repos:read",
        check=True,
    )
    stack.run(
        "cli", "principal", "register", "--kind", "orchestrator", "--name", "orch", check=True
    )
    stack.run(
        "cli",
        "policy",
        "create",
        "--principal",
        "orch",
        "--max-validity",
        "1h",
        "--resource",
        "provider:github:resource:*",
        "--action",
        "provider:github:action:*",
        check=True,
    )
    mandate = stack.json(
        "cli",
        "mandate",
        "issue",
        "--issuer",
        "alice",
        "--subject",
        "orch",
        "--ttl",
        "10m",
        "--resource",
        REPOS,
        "--action",
        READ,
        "--json",
    )
    allowed = stack.run(
        "cli", "mandate", "validate", mandate["id"], "--action", READ, "--resource", REPOS, "--json"
    )
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["allowed"] is True
    denied = stack.run(
        "cli",
        "mandate",
        "validate",
        mandate["id"],
        "--action",
        "provider:github:action:write",
        "--resource",
        REPOS,
        "--json",
    )
    assert denied.returncode == 6
    assert json.loads(denied.stdout)["reason_code"] == "ACTION_OUT_OF_SCOPE"


def test_host_io_paths_map_into_the_container(stack: StackEnv) -> None:
    archive = stack.home / "host-io" / "from-stack.tar.gz"
    result = stack.run("cli", "backup", "create", "--output", str(archive), timeout=300)
    assert result.returncode == 0, result.stderr
    assert archive.exists() and archive.stat().st_size > 0
    verified = stack.run("cli", "backup", "verify", str(archive), timeout=300)
    assert verified.returncode == 0, verified.stderr


def test_doctor_finds_the_stack_well_and_a_taken_port(stack: StackEnv) -> None:
    findings = stack.json("doctor", "--json")
    assert all(f["ok"] for f in findings), findings
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**stack.env, "CARACAL_RUNTIME_PORT": str(port)}
        result = subprocess.run(
            [*_caracal(stack), "doctor", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 8
    taken = [f for f in json.loads(result.stdout) if not f["ok"]]
    assert [f["check"] for f in taken] == [f"port 127.0.0.1:{port}"]
    assert "CARACAL_RUNTIME_PORT" in taken[0]["next_step"]


def test_cli_without_arguments_is_the_restricted_shell(stack: StackEnv) -> None:
    result = subprocess.run(
        [*_caracal(stack), "cli"],
        input="principal list --json\nsh -c id\nexit\n",
        capture_output=True,
        text=True,
        env=stack.env,
        timeout=60,
    )
    assert '"alice"' in result.stdout
    assert "uid=" not in result.stdout + result.stderr


@pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")
def test_flow_attaches_in_a_real_terminal_and_quits_cleanly(stack: StackEnv) -> None:
    env = {
        k: v for k, v in stack.env.items() if k.startswith(("CARACAL_", "PATH", "HOME", "DOCKER"))
    }
    command = [*_caracal(stack), "flow"]
    with terminal(["sh", "-c", f'{shlex.join(command)}; echo "[flow exited $?]"'], env) as term:
        shown = term.wait_for("Decisions per minute", timeout=120)
        assert "PostgreSQL" in shown
        term.send("q")
        after = term.wait_for("[flow exited 0]", timeout=30)
        assert "Traceback" not in after
    flow = _status(stack)["flow"]
    assert flow["state"] == "running"  # the flow container stays for the next attach


def _settles_on_one_flow(stack: StackEnv) -> bool:
    """One Flow runs once its start-up is over: the copy it forks to read the dashboard's
    first figures (caracal.flow.prefetch) exits within moments; a leftover Flow never does."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len(_flow_processes(stack)) == 1:
            return True
        time.sleep(0.2)
    return False


def _flow_processes(stack: StackEnv) -> list[str]:
    """The `caracal flow` processes running in the flow container."""
    script = (
        "import os\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        try: c = open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0')\n"
        "        except OSError: continue\n"
        "        if any(b'caracal' in part for part in c[:2]) and b'flow' in c: print(p)\n"
    )
    found = subprocess.run(
        ["docker", "exec", f"{stack.project}-flow-1", "python3", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.split()


@pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")
def test_detaching_from_flow_restores_the_terminal_and_ends_that_flow(stack: StackEnv) -> None:
    env = {
        k: v for k, v in stack.env.items() if k.startswith(("CARACAL_", "PATH", "HOME", "DOCKER"))
    }
    command = [*_caracal(stack), "flow"]
    script = f'{shlex.join(command)}; echo "[flow exited $?]"; stty -a | head -1'
    with terminal(["sh", "-c", script], env) as term:
        term.wait_for("Decisions per minute", timeout=120)
        assert _settles_on_one_flow(stack)
        term.send("C-]", "C-]")
        after = term.wait_for("[flow exited 0]", timeout=30)
        assert "Detached" in after and "Traceback" not in after
    assert _flow_processes(stack) == []  # nothing left running unseen
    # The next `caracal flow` starts one Flow, not a second beside a leftover.
    with terminal(["sh", "-c", f'{shlex.join(command)}; echo "[flow exited $?]"'], env) as term:
        term.wait_for("Decisions per minute", timeout=120)
        assert _settles_on_one_flow(stack)
        term.send("q")
        term.wait_for("[flow exited 0]", timeout=30)
    assert _flow_processes(stack) == []


def test_logs_show_the_runtime_log(stack: StackEnv) -> None:
    result = stack.run("logs", "runtime", check=True)
    assert "Caracal runtime serving workspace default" in result.stdout
    assert all(line.startswith("runtime | ") for line in result.stdout.splitlines())
    unknown = stack.run("logs", "nosuch")
    assert unknown.returncode == 3 and "nosuch" in unknown.stderr


def test_down_keeps_the_data(stack: StackEnv) -> None:
    assert stack.run("down", timeout=300).returncode == 0
    assert stack.labelled("container") == []
    assert len(stack.labelled("volume")) == 2
    assert stack.run("up", timeout=300).returncode == 0
    # `down` let PostgreSQL shut down cleanly (its stop signal, its grace period): no recovery.
    log = stack.run("logs", "postgres").stdout
    assert "database system was shut down" in log, log
    assert "not properly shut down" not in log, log
    names = {p["name"] for p in stack.json("cli", "principal", "list", "--json")}
    assert names == {"alice", "orch"}


def test_reset_removes_the_data(stack: StackEnv) -> None:
    refused = stack.run("reset")
    assert refused.returncode == 9 and "--yes" in refused.stderr
    assert stack.run("reset", "--yes", timeout=300).returncode == 0
    assert stack.labelled("volume") == [] and stack.labelled("container") == []
    assert stack.run("up", timeout=300).returncode == 0
    assert stack.json("cli", "principal", "list", "--json") == []


def test_purge_removes_exactly_what_is_labelled(stack: StackEnv) -> None:
    subprocess.run(["docker", "rm", "-f", "caracal-lookalike"], capture_output=True)
    subprocess.run(
        ["docker", "run", "-d", "--name", "caracal-lookalike", stack.env["CARACAL_REDIS_IMAGE"]],
        check=True,
        capture_output=True,
    )
    try:
        refused = stack.run("purge")
        assert refused.returncode == 9 and "--force" in refused.stderr
        assert stack.labelled("container")  # nothing happened
        result = stack.run("purge", "--force", timeout=300)
        assert result.returncode == 0, result.stderr
        for kind in ("container", "volume", "network", "image"):
            assert stack.labelled(kind) == [], kind
        assert not (stack.home / "stack" / stack.project).exists()
        lookalike = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", "caracal-lookalike"],
            capture_output=True,
            text=True,
        )
        assert lookalike.stdout.strip() == "true"
    finally:
        subprocess.run(["docker", "rm", "-f", "caracal-lookalike"], capture_output=True)


def _caracal(stack: StackEnv) -> list[str]:
    return [sys.executable, "-m", "caracal"]


def test_doctor_names_a_broken_stack_file_not_the_engine(stack: StackEnv, tmp_path: Path) -> None:
    """The engine answers: a stack file that cannot be used is named as that, with its fix."""
    broken = tmp_path / "stack.yml"
    broken.write_text("services: [not, a, mapping]\n")
    result = stack.run("doctor", "--json", "--compose-file", str(broken))
    assert result.returncode == 8, result
    findings = json.loads(result.stdout)
    assert [f["check"] for f in findings] == ["stack file"], findings
    assert str(broken) in findings[0]["next_step"], findings
