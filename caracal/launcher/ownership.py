"""Private files that the containers' users can read: the host I/O folder and each service's
secret files, given to the uid and gid the service runs as."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from caracal.launcher.state import CONTAINER_UID

if TYPE_CHECKING:
    from caracal.launcher.compose_model import Service
    from caracal.launcher.project import Project


def user_of(project: Project, service: Service) -> tuple[int, int] | None:
    """The uid and gid the service's processes run as (compose `user`, else the image's
    USER, else root); None for a user given by name."""
    spec = service.user
    if spec is None:
        try:
            spec = project.client.images.get(service.image).attrs["Config"].get("User") or ""
        except Exception:
            spec = ""
    user, _, group = (spec or "0").partition(":")
    if not user.isdigit() or (group and not group.isdigit()):
        return None
    return int(user), int(group or user)


def own(
    project: Project, path: Path, uid: int, gid: int, image: str, mode: int | None = None
) -> None:
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
    project.client.containers.run(
        image,
        entrypoint=["sh", "-c", script],
        command=[],
        user="0:0",
        volumes={str(path): {"bind": "/target", "mode": "rw"}},
        network_mode="none",
        labels=project.labels(**{"com.docker.compose.oneoff": "True"}),
        remove=True,
    )


def share_host_io(project: Project, image: str) -> None:
    """The host I/O folder belongs to the containers' user, 0700. Without root on the
    host it stays in the operator's group instead (0770, new files inherit the group), so
    the operator can still reach it, and it is never world-writable."""
    if os.geteuid() == 0:
        own(project, project.state.host_io, CONTAINER_UID, CONTAINER_UID, image, 0o700)
    else:
        own(project, project.state.host_io, CONTAINER_UID, os.getgid(), image, 0o2770)


def secret_files(project: Project, service: Service) -> dict[str, Path]:
    owner = user_of(project, service)
    files: dict[str, Path] = {}
    for name in service.secrets:
        path = project.state.service_secret(service.name, name)
        if owner is not None:
            own(project, path, owner[0], owner[1], service.image, 0o600)
        files[name] = path
    return files


def mounts(service: Service, folder: Path) -> bool:
    """Whether the service bind-mounts `folder`."""
    return any(
        m.kind != "volume" and Path(m.source).expanduser().resolve() == folder.resolve()
        for m in service.mounts
    )
