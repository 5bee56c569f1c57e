"""The Docker engine connection: one clear sentence when there is none."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from caracal.core.errors import UnavailableError

if TYPE_CHECKING:
    import docker

NO_ENGINE = (
    "No Docker engine is reachable{where}: start Docker (or set DOCKER_HOST), "
    "or work without it with `caracal flow --local`."
)


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client whose engine has answered a ping, or UnavailableError."""
    import docker
    from docker.errors import DockerException

    where = f" at {os.environ['DOCKER_HOST']}" if os.environ.get("DOCKER_HOST") else ""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        raise UnavailableError(NO_ENGINE.format(where=where)) from exc
    return client
