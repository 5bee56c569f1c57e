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


# Flow's process in the container writes its pid here (the container's /tmp is a tmpfs), so
# the launcher can tell a detach (Flow still running) from Flow quitting.
_FLOW_PID = "/tmp/caracal-flow-{session}.pid"  # noqa: S108 - the container's private tmpfs
# What a detached full-screen app leaves set: leave the alternate screen, stop mouse
# reporting and bracketed paste, show the cursor, reset colours.
_RESTORE_TERMINAL = (
    "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?1049l\x1b[?25h\x1b[0m"
)


def attach_flow(launcher: Launcher, command: list[str]) -> int:
    """Flow in the `flow` container on this terminal. Quitting Flow returns its exit code.
    Detaching (ctrl-] ctrl-]) ends that Flow cleanly instead of leaving it running unseen:
    the terminal is restored and the command exits 0; the next `caracal flow` starts afresh
    (its area, filters and selection come back from Flow's saved state)."""
    import secrets

    session = secrets.token_hex(6)
    pidfile = _FLOW_PID.format(session=session)
    wrapped = ["sh", "-c", f'echo $$ > {pidfile} && exec "$@"', "caracal-flow", *command]
    code = exec_tty(launcher, "flow", wrapped)
    if not _end_flow(launcher, pidfile):
        return code
    sys.stdout.write(_RESTORE_TERMINAL)
    sys.stdout.flush()
    if sys.stdin.isatty():
        subprocess.call(["stty", "sane"], stdin=sys.stdin)
    print("Detached: Flow in the stack was closed; `caracal flow` opens it again.", flush=True)
    return 0


def _end_flow(launcher: Launcher, pidfile: str) -> bool:
    """Stop the Flow process recorded in `pidfile` if it still runs (a detach); True then."""
    script = (
        f"pid=$(cat {pidfile} 2>/dev/null) || exit 1; rm -f {pidfile}; "
        'grep -q caracal "/proc/$pid/cmdline" 2>/dev/null || exit 1; '
        'kill -TERM "$pid"; '
        'for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.2; done; '
        'kill -KILL "$pid"; exit 0'
    )
    api = launcher.client.api
    exec_id = api.exec_create(_running(launcher, "flow"), ["sh", "-c", script])["Id"]
    api.exec_start(exec_id)  # waits for the script
    return bool(api.exec_inspect(exec_id).get("ExitCode") == 0)


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
