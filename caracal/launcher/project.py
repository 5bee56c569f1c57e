"""One Compose project on the engine: the stack it applies, the Docker client and local state
it uses, where it reports, the names Compose would give its objects and the labels that mark
them as the project's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from caracal.launcher.compose_model import Stack
from caracal.launcher.state import StackState
from caracal.launcher.watch import Unwatched, UpWatcher

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
CONFIG_HASH = "com.docker.compose.config-hash"
Say = Callable[[str], None]


class Project:
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

    def labels(self, **extra: str) -> dict[str, str]:
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
