"""Applying the compose file through the Docker SDK: network, volumes, images, containers in
dependency order, health waits; and taking it all down again, precisely by label."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caracal.core.errors import ConflictError, UnavailableError
from caracal.launcher.compose_model import Service, Stack
from caracal.launcher.state import CONTAINER_UID, StackState
from caracal.launcher.watch import Unwatched, UpWatcher

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
CONFIG_HASH = "com.docker.compose.config-hash"
Say = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    container: str | None
    state: str  # running, exited, created, ...; "missing", or "not started" for a profile's
    health: str  # healthy, unhealthy, starting, none
    ports: list[str]

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @property
    def problem(self) -> str | None:
        """Why this service cannot do its part, or None: a service the stack always runs is
        missing, not running or unhealthy; one a profile starts on demand is not started yet."""
        if self.state == "not started":
            return None
        if self.state != "running":
            return f"{self.service} is {self.state}"
        if self.health == "unhealthy":
            return f"{self.service} is unhealthy"
        return None


class Launcher:
    def __init__(
        self,
        stack: Stack,
        client: docker.DockerClient,
        state: StackState,
        say: Say = print,
        watch: UpWatcher | None = None,
    ) -> None:
        self.stack = stack
        self.client = client
        self.state = state
        self.say = say
        self.watch: UpWatcher = watch or Unwatched()

    # ---- names and lookups ----------------------------------------------------------------
    @property
    def project(self) -> str:
        return self.stack.project

    @property
    def network_name(self) -> str:
        return f"{self.project}_default"

    def volume_name(self, key: str) -> str:
        return f"{self.project}_{key}"

    def container_name(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def _labels(self, **extra: str) -> dict[str, str]:
        return {PROJECT: self.project, **extra}

    def containers(self) -> list[Container]:
        return list(
            self.client.containers.list(all=True, filters={"label": f"{PROJECT}={self.project}"})
        )

    def container(self, service: str) -> Container | None:
        for found in self.containers():
            if found.labels.get(SERVICE) == service:
                return found
        return None

    # ---- up ---------------------------------------------------------------------------------
    def up(
        self, targets: Iterable[str] | None = None, *, build: bool = False, timeout: float = 120
    ) -> list[ServiceStatus]:
        """Bring the default services (or `targets` and what they depend on) to healthy."""
        services = self._selection(targets)
        self.watch.phase("network and volumes")
        self.state.prepare()
        self._ensure_network()
        self._ensure_volumes()
        from caracal.launcher.images import ensure_images

        self.watch.phase("images")
        image_ids = ensure_images(self, services, build=build)
        sharing = next((s for s in services if _mounts(s, self.state.host_io)), None)
        if sharing is not None:
            self._share_host_io(sharing.image)
        clock = _Clock(timeout)
        for service in services:
            for dependency, condition in service.depends_on.items():
                self._wait(dependency, condition, clock)
            self.watch.phase(f"starting {service.name}")
            self._ensure_container(service, image_ids[service.image])
        for service in services:
            self._wait(service.name, "service_healthy", clock)
        return self.status([s.name for s in services])

    def _selection(self, targets: Iterable[str] | None) -> list[Service]:
        if targets is None:
            return self.stack.active()
        chosen = []
        for name in targets:
            if name not in self.stack.services:
                known = ", ".join(self.stack.services)
                raise ConflictError(f"No service {name!r} in {self.stack.path}; it has {known}.")
            chosen.append(self.stack.services[name])
        return self.stack.ordered(chosen)

    def _ensure_network(self) -> None:
        if not self.client.networks.list(names=[self.network_name]):
            self.client.networks.create(
                self.network_name,
                driver="bridge",
                labels=self._labels(**{"com.docker.compose.network": "default"}),
            )

    def _ensure_volumes(self) -> None:
        existing = {
            v.name for v in self.client.volumes.list(filters={"label": f"{PROJECT}={self.project}"})
        }
        for key in self.stack.volumes:
            if self.volume_name(key) not in existing:
                self.client.volumes.create(
                    self.volume_name(key),
                    labels=self._labels(**{"com.docker.compose.volume": key}),
                )

    # ---- ownership: private files that the containers' users can read -------------------
    def _user_of(self, service: Service) -> tuple[int, int] | None:
        """The uid and gid the service's processes run as (compose `user`, else the image's
        USER, else root); None for a user given by name."""
        spec = service.user
        if spec is None:
            try:
                spec = self.client.images.get(service.image).attrs["Config"].get("User") or ""
            except Exception:
                spec = ""
        user, _, group = (spec or "0").partition(":")
        if not user.isdigit() or (group and not group.isdigit()):
            return None
        return int(user), int(group or user)

    def _own(self, path: Path, uid: int, gid: int, image: str, mode: int | None = None) -> None:
        """Give `path` to a container user. Root does it here; anyone else through the
        engine, in a throwaway container of an image the stack runs anyway."""
        info = path.stat()
        wanted_mode = mode if mode is not None else info.st_mode & 0o7777
        if (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (uid, gid, wanted_mode):
            return
        if os.geteuid() == 0:
            os.chown(path, uid, gid)
            os.chmod(path, wanted_mode)
            return
        script = f"chown {uid}:{gid} /target && chmod {wanted_mode:o} /target"
        self.client.containers.run(
            image,
            entrypoint=["sh", "-c", script],
            command=[],
            user="0:0",
            volumes={str(path): {"bind": "/target", "mode": "rw"}},
            network_mode="none",
            labels=self._labels(**{"com.docker.compose.oneoff": "True"}),
            remove=True,
        )

    def _share_host_io(self, image: str) -> None:
        """The host I/O folder belongs to the containers' user, 0700. Without root on the
        host it stays in the operator's group instead (0770, new files inherit the group), so
        the operator can still reach it, and it is never world-writable."""
        if os.geteuid() == 0:
            self._own(self.state.host_io, CONTAINER_UID, CONTAINER_UID, image, 0o700)
        else:
            self._own(self.state.host_io, CONTAINER_UID, os.getgid(), image, 0o2770)

    def _secret_files(self, service: Service) -> dict[str, Path]:
        owner = self._user_of(service)
        files: dict[str, Path] = {}
        for name in service.secrets:
            path = self.state.service_secret(service.name, name)
            if owner is not None:
                self._own(path, owner[0], owner[1], service.image, 0o600)
            files[name] = path
        return files

    def _ensure_container(self, service: Service, image_id: str) -> None:
        secret_files = self._secret_files(service)
        wanted = service.config_hash(image_id, secret_files)
        current = self.container(service.name)
        if current is not None and current.labels.get(CONFIG_HASH) != wanted:
            self.say(f"  {service.name}: configuration changed, recreating")
            current.remove(force=True)
            current = None
        if current is None:
            current = self.client.containers.create(
                **self._create_args(service, wanted, secret_files)
            )
        if current.status != "running":
            self.say(f"  {service.name}: starting")
            from docker.errors import APIError

            try:
                current.start()
            except APIError as exc:
                raise start_failure(service, exc) from None

    def _create_args(
        self, service: Service, config_hash: str, secret_files: dict[str, Any]
    ) -> dict[str, Any]:
        volumes: dict[str, dict[str, str]] = {}
        for mount in service.mounts:
            source = self.volume_name(mount.source) if mount.kind == "volume" else mount.source
            volumes[source] = {"bind": mount.target, "mode": "ro" if mount.read_only else "rw"}
        for name, path in secret_files.items():
            volumes[str(path)] = {"bind": f"/run/secrets/{name}", "mode": "ro"}
        labels = {
            **service.labels,
            **self._labels(
                **{
                    SERVICE: service.name,
                    CONFIG_HASH: config_hash,
                    "com.docker.compose.container-number": "1",
                    "com.docker.compose.oneoff": "False",
                    "com.docker.compose.project.config_files": str(self.stack.path),
                    "com.docker.compose.project.working_dir": str(self.stack.path.parent),
                }
            ),
        }
        args: dict[str, Any] = {
            "image": service.image,
            "name": self.container_name(service.name),
            "command": service.command,
            "entrypoint": service.entrypoint,
            "environment": service.environment,
            "labels": labels,
            "volumes": volumes,
            "ports": {f"{p.container_port}/tcp": (p.host_ip, p.host_port) for p in service.ports},
            "read_only": service.read_only,
            "cap_drop": service.cap_drop or None,
            "security_opt": service.security_opt or None,
            "tmpfs": {path: "" for path in service.tmpfs} or None,
            "user": service.user,
            "tty": service.tty,
            "stdin_open": service.stdin_open,
            "init": service.init or None,
            "working_dir": service.working_dir,
            "stop_signal": service.stop_signal,
            "network": self.network_name,
            "networking_config": {
                self.network_name: self.client.api.create_endpoint_config(aliases=[service.name])
            },
            "detach": True,
        }
        if service.healthcheck is not None:
            args["healthcheck"] = service.healthcheck.to_docker()
        if service.restart != "no":
            args["restart_policy"] = {"Name": service.restart}
        return {k: v for k, v in args.items() if v is not None}

    def _wait(self, name: str, condition: str, clock: _Clock) -> None:
        deadline = clock.deadline
        announced = False
        while True:
            container = self.container(name)
            if container is None:
                raise UnavailableError(f"Service {name} has no container; run `caracal up`.")
            state = container.attrs.get("State", {})
            health = (state.get("Health") or {}).get("Status")
            if state.get("Status") in ("exited", "dead"):
                raise UnavailableError(
                    f"Service {name} stopped (exit code {state.get('ExitCode')}): "
                    f"{_tail(container)}; see `caracal logs {name}`."
                )
            if condition == "service_started" and state.get("Status") == "running":
                return
            if state.get("Status") == "running" and health in (None, "healthy", "none"):
                return
            if health == "unhealthy":
                raise UnavailableError(
                    f"Service {name} is unhealthy ({_last_probe(state)}; last log: "
                    f"{_tail(container)}); see `caracal logs {name}`."
                )
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"Service {name} was not healthy in time (state {state.get('Status')}, "
                    f"health {health}); see `caracal logs {name}`."
                )
            if not announced:
                self.say(f"  {name}: waiting for health")
                self.watch.phase(f"waiting for {name} to be healthy")
                announced = True
            self.watch.waiting(name, clock.waited, clock.timeout)
            time.sleep(0.2)
            container.reload()

    # ---- status, down, reset, purge ------------------------------------------------------------
    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        wanted = list(names) if names is not None else list(self.stack.services)
        found = {c.labels.get(SERVICE): c for c in self.containers()}
        out = []
        for name in wanted:
            container = found.get(name)
            if container is None:
                service = self.stack.services.get(name)
                state = "not started" if service is not None and service.profiles else "missing"
                out.append(ServiceStatus(name, None, state, "none", []))
                continue
            state = container.attrs.get("State", {})
            ports = []
            for inner, bindings in (
                container.attrs.get("NetworkSettings", {}).get("Ports") or {}
            ).items():
                for binding in bindings or []:
                    ports.append(f"{binding.get('HostIp')}:{binding.get('HostPort')}->{inner}")
            health = (state.get("Health") or {}).get("Status") or "none"
            out.append(ServiceStatus(name, container.name, state.get("Status", "?"), health, ports))
        return out

    def down(self, *, volumes: bool = False) -> list[str]:
        """Stop and remove the project's containers (and with `volumes`, its volumes) and its
        network. Returns what was removed."""
        removed = []
        containers = {c.labels.get(SERVICE): c for c in self.containers()}
        known = [s.name for s in self.stack.ordered(list(self.stack.services.values()))]
        # Dependents first, each given its grace period to stop cleanly (PostgreSQL checkpoints
        # on its stop signal); whatever is left after it is killed.
        for name in [*reversed(known), *(n for n in containers if n not in known)]:
            container = containers.get(name)
            if container is None:
                continue
            service = self.stack.services.get(name or "")
            grace = service.stop_timeout_s if service and service.stop_timeout_s else 10
            with contextlib.suppress(Exception):
                if container.status == "running":
                    container.stop(timeout=grace)
            container.remove(force=True)
            removed.append(f"container {container.name}")
        for network in self.client.networks.list(filters={"label": f"{PROJECT}={self.project}"}):
            network.remove()
            removed.append(f"network {network.name}")
        if volumes:
            for volume in self.client.volumes.list(filters={"label": f"{PROJECT}={self.project}"}):
                volume.remove(force=True)
                removed.append(f"volume {volume.name}")
        return removed

    def purge(self) -> list[str]:
        """Everything labelled as this project, the images it built, and its local state."""
        removed = self.down(volumes=True)
        for image in self.client.images.list(filters={"label": f"{PROJECT}={self.project}"}):
            self.client.images.remove(image.id, force=True)
            removed.append(f"image {', '.join(image.tags) or image.short_id}")
        # The runtime Dockerfile's install stage, left untagged by the classic builder.
        stages = {"label": "org.caracal.build-stage=install", "dangling": True}
        for image in self.client.images.list(filters=stages):
            with contextlib.suppress(Exception):  # still the parent of a tagged image
                self.client.images.remove(image.id)
                removed.append(f"build stage {image.short_id}")
        if self.state.root.exists():
            self.state.remove()
            removed.append(f"local state {self.state.root}")
        return removed


class _Clock:
    """The one health budget of an `up`: every service's wait counts against it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout

    @property
    def waited(self) -> float:
        return time.monotonic() - self.started


def _tail(container: Container, lines: int = 3) -> str:
    try:
        text = container.logs(tail=lines).decode(errors="replace").strip()
    except Exception:
        return "no log"
    return " | ".join(text.splitlines()[-lines:]) or "no log"


def _last_probe(state: dict[str, Any]) -> str:
    log = (state.get("Health") or {}).get("Log") or []
    if not log:
        return "no probe result yet"
    return (
        str(log[-1].get("Output", "")).strip().splitlines()[-1:][0]
        if log[-1].get("Output")
        else "probe failed"
    )


def _mounts(service: Service, folder: Path) -> bool:
    return any(
        m.kind != "volume" and Path(m.source).expanduser().resolve() == folder.resolve()
        for m in service.mounts
    )


PORT_TAKEN = (
    "Service {service} cannot publish port {ports}: another program holds it; stop it, or "
    "choose another port with CARACAL_RUNTIME_PORT (`caracal doctor` checks the ports)."
)


def start_failure(service: Service, exc: Exception) -> UnavailableError:
    """Docker's refusal to start a container, as one sentence with the next step. A port held
    by another program is the common case, and Docker words it in several ways."""
    text = str(getattr(exc, "explanation", None) or exc)
    if any(s in text for s in ("port is already allocated", "address already in use")):
        ports = ", ".join(f"{p.host_ip}:{p.host_port}" for p in service.ports) or "?"
        return UnavailableError(PORT_TAKEN.format(service=service.name, ports=ports))
    return UnavailableError(
        f"Docker could not start service {service.name}: {text}; see `caracal doctor`."
    )
