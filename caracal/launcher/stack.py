"""Applying the compose file through the Docker SDK: network, volumes, images, containers in
dependency order, health waits; and taking it all down again, precisely by label."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from caracal.core.errors import ConflictError
from caracal.launcher.compose_model import Service
from caracal.launcher.containers import ensure_container
from caracal.launcher.health import Clock, wait_for
from caracal.launcher.ownership import mounts, share_host_io
from caracal.launcher.project import PROJECT, SERVICE, Project


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


class Launcher(Project):
    """Brings the project's services up, reports their state and takes them down."""

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
        sharing = next((s for s in services if mounts(s, self.state.host_io)), None)
        if sharing is not None:
            share_host_io(self, sharing.image)
        clock = Clock(timeout)
        for service in services:
            for dependency, condition in service.depends_on.items():
                wait_for(self, dependency, condition, clock)
            self.watch.phase(f"starting {service.name}")
            ensure_container(self, service, image_ids[service.image])
        for service in services:
            wait_for(self, service.name, "service_healthy", clock)
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
                labels=self.labels(**{"com.docker.compose.network": "default"}),
            )

    def _ensure_volumes(self) -> None:
        existing = {
            v.name for v in self.client.volumes.list(filters={"label": f"{PROJECT}={self.project}"})
        }
        for key in self.stack.volumes:
            if self.volume_name(key) not in existing:
                self.client.volumes.create(
                    self.volume_name(key),
                    labels=self.labels(**{"com.docker.compose.volume": key}),
                )

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
