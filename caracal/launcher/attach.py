"""Terminals and commands inside the stack: Flow in the `flow` container, the restricted shell
or one product command in the `runtime` container."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from caracal.core.errors import UnavailableError

if TYPE_CHECKING:
    from caracal.launcher.stack import Launcher

# Docker's default detach keys are ctrl-p,ctrl-q, and ctrl+p is Flow's command palette.
DETACH_KEYS = "ctrl-],ctrl-]"


def _docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        raise UnavailableError(
            "Attaching a terminal needs the `docker` command on PATH; install the Docker CLI, "
            "or use `caracal flow --local`."
        )
    return found


def _running(launcher: Launcher, service: str) -> str:
    container = launcher.container(service)
    if container is None or container.status != "running":
        raise UnavailableError(f"The {service} container is not running; run `caracal up` first.")
    return str(container.name)


def exec_tty(launcher: Launcher, service: str, command: list[str]) -> int:
    """Hand this terminal to `docker exec -it` (the one place the launcher shells out)."""
    name = _running(launcher, service)
    env = []
    for variable in ("TERM", "COLORTERM"):
        if os.environ.get(variable):
            env += ["-e", f"{variable}={os.environ[variable]}"]
    argv = [_docker_cli(), "exec", "-it", "--detach-keys", DETACH_KEYS, *env, name, *command]
    return subprocess.call(argv)


def exec_piped(launcher: Launcher, service: str, command: list[str], stdin: bytes) -> int:
    """Run one command in the container without a terminal: `stdin` is sent and closed, the
    command's stdout and stderr arrive here as they are written, its exit code is returned."""
    import socket

    from docker.utils.socket import STDERR, frames_iter

    name = _running(launcher, service)
    api = launcher.client.api
    exec_id = api.exec_create(name, command, stdin=True, stdout=True, stderr=True, tty=False)["Id"]
    connection = api.exec_start(exec_id, socket=True)
    raw = getattr(connection, "_sock", connection)
    try:
        if stdin:
            raw.sendall(stdin)
        raw.shutdown(socket.SHUT_WR)
        for stream, data in frames_iter(connection, tty=False):
            target = sys.stderr.buffer if stream == STDERR else sys.stdout.buffer
            target.write(data)
            target.flush()
    finally:
        connection.close()
    code = api.exec_inspect(exec_id).get("ExitCode")
    return int(code) if code is not None else 1


def run_cli(launcher: Launcher, args: list[str]) -> int:
    """`caracal cli [ARGS...]`: the restricted shell, or one product command."""
    mapped = [launcher.state.map_host_path(a) for a in args]
    if mapped and mapped[0] == "caracal":
        mapped = mapped[1:]
    command = ["caracal", *(mapped or ["shell"])]
    if sys.stdin.isatty() and sys.stdout.isatty():
        return exec_tty(launcher, "runtime", command)
    stdin = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
    return exec_piped(launcher, "runtime", command, stdin)
