"""Terminals and commands inside the stack: Flow in the `flow` container, the restricted shell
or one product command in the `runtime` container."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from caracal.core.errors import UnavailableError

if TYPE_CHECKING:
    from caracal.launcher.stack import Launcher

# Options that name a host variable holding a secret: the variable travels into the command's
# environment (never onto a command line, where `ps` and `docker inspect` would show it).
ENV_OPTIONS = ("--credential-env", "--lock-key-env")

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


def named_variables(args: list[str]) -> list[str]:
    """The host variables a command names through ENV_OPTIONS (`--opt VAR` or `--opt=VAR`)."""
    names = []
    for i, arg in enumerate(args):
        option, equals, value = arg.partition("=")
        if option not in ENV_OPTIONS:
            continue
        name = value if equals else args[i + 1] if i + 1 < len(args) else ""
        if name and name not in names:
            names.append(name)
    return names


def exec_tty(
    launcher: Launcher, service: str, command: list[str], forward: Sequence[str] = ()
) -> int:
    """Hand this terminal to `docker exec -it` (the one place the launcher shells out)."""
    name = _running(launcher, service)
    env = []
    for variable in ("TERM", "COLORTERM"):
        if os.environ.get(variable):
            env += ["-e", f"{variable}={os.environ[variable]}"]
    for variable in forward:
        if variable in os.environ:
            env += ["-e", variable]  # the docker CLI reads the value from its environment
    argv = [_docker_cli(), "exec", "-it", "--detach-keys", DETACH_KEYS, *env, name, *command]
    return subprocess.call(argv)


def exec_piped(
    launcher: Launcher,
    service: str,
    command: list[str],
    stdin: bytes,
    environment: dict[str, str] | None = None,
) -> int:
    """Run one command in the container without a terminal: `stdin` is sent and closed, the
    command's stdout and stderr arrive here as they are written, its exit code is returned."""
    import socket

    from docker.utils.socket import STDERR, frames_iter

    name = _running(launcher, service)
    api = launcher.client.api
    exec_id = api.exec_create(
        name, command, stdin=True, stdout=True, stderr=True, tty=False, environment=environment
    )["Id"]
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
    forward = named_variables(mapped)
    if sys.stdin.isatty() and sys.stdout.isatty():
        return exec_tty(launcher, "runtime", command, forward)
    stdin = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
    environment = {name: os.environ[name] for name in forward if name in os.environ}
    return exec_piped(launcher, "runtime", command, stdin, environment or None)
