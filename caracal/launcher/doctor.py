"""`caracal doctor`: is this host ready for the stack? Each problem comes with a next step."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caracal.core.errors import CaracalError

if TYPE_CHECKING:
    from caracal.launcher.stack import Launcher

MIN_API = (1, 41)
MIN_FREE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    next_step: str = ""


def engine_finding(error: CaracalError) -> Finding:
    """Why the engine did not answer, from the error under the launcher's one sentence."""
    cause: BaseException | None = error.__cause__
    while cause is not None and not isinstance(cause, OSError) and cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause or "").lower()
    if isinstance(cause, PermissionError) or "permission denied" in text:
        return Finding(
            "docker engine",
            False,
            "permission denied on the Docker socket",
            "add your user to the docker group (then log in again), or run Docker rootless",
        )
    if isinstance(cause, FileNotFoundError) or "no such file" in text:
        return Finding(
            "docker engine",
            False,
            "no Docker socket",
            "start the Docker engine (systemctl start docker), or set DOCKER_HOST; "
            "`caracal flow --local` works without Docker",
        )
    if isinstance(cause, ConnectionRefusedError) or "connection refused" in text:
        return Finding(
            "docker engine",
            False,
            "the Docker socket refuses connections",
            "restart the Docker engine, or check DOCKER_HOST",
        )
    return Finding("docker engine", False, "not reachable", error.message)


def stack_file_finding(error: CaracalError) -> Finding:
    return Finding("stack file", False, "unusable", error.message)


def examine(launcher: Launcher) -> list[Finding]:
    client = launcher.client
    version = client.version()
    api = str(version.get("ApiVersion", "0.0"))
    findings = [Finding("docker engine", True, f"Docker {version.get('Version', '?')}")]
    major, minor = (int(p) for p in api.split(".")[:2])
    findings.append(
        Finding("api version", True, api)
        if (major, minor) >= MIN_API
        else Finding("api version", False, api, "upgrade Docker to 20.10 or newer")
    )
    root = Path(str(client.info().get("DockerRootDir") or "/"))
    free = shutil.disk_usage(root if root.exists() else Path("/")).free
    findings.append(
        Finding("disk", True, f"{free / 1024**3:.1f} GiB free for {root}")
        if free >= MIN_FREE_BYTES
        else Finding(
            "disk",
            False,
            f"{free / 1024**3:.1f} GiB free for {root}",
            "free at least 2 GiB (docker system prune removes unused data)",
        )
    )
    findings += _images(launcher)
    findings += _ports(launcher)
    return findings


def _images(launcher: Launcher) -> list[Finding]:
    from docker.errors import ImageNotFound

    out = []
    seen: set[str] = set()
    for service in launcher.stack.active():
        if service.image in seen:
            continue
        seen.add(service.image)
        try:
            launcher.client.images.get(service.image)
            out.append(Finding(f"image {service.image}", True, "present"))
        except ImageNotFound:
            if service.build is not None:
                out.append(Finding(f"image {service.image}", True, "built by `caracal up`"))
            else:
                out.append(
                    Finding(
                        f"image {service.image}",
                        False,
                        "missing",
                        "`docker pull` it, or without a registry run containers/offline/build-images.sh "
                        "and set the CARACAL_*_IMAGE variables it prints",
                    )
                )
    return out


def _ports(launcher: Launcher) -> list[Finding]:
    out = []
    for service in launcher.stack.active():
        container = launcher.container(service.name)
        # Only the ports this container really publishes are ours: the configured port may
        # have changed (CARACAL_RUNTIME_PORT) since the container was created.
        published = (
            _published(container.attrs)
            if container is not None and container.status == "running"
            else set()
        )
        for port in service.ports:
            label = f"port {port.host_ip}:{port.host_port}"
            if (port.host_ip, str(port.host_port)) in published:
                out.append(Finding(label, True, f"held by the stack's {service.name}"))
            elif _free(port.host_ip, port.host_port):
                out.append(Finding(label, True, "free"))
            else:
                out.append(
                    Finding(
                        label,
                        False,
                        "in use by another program",
                        "stop it, or choose another port with CARACAL_RUNTIME_PORT",
                    )
                )
    return out


def _published(attrs: dict[str, Any]) -> set[tuple[str, str]]:
    """(host IP, host port) of every binding a container publishes."""
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {
        (str(binding.get("HostIp")), str(binding.get("HostPort")))
        for bindings in ports.values()
        for binding in bindings or []
    }


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
