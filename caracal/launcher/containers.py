"""One service's container: created from its spec with Compose's labels, recreated when that
spec (or its image, or its secrets) changes, started, and a refusal to start put in words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from caracal.core.errors import UnavailableError
from caracal.launcher.ownership import secret_files
from caracal.launcher.project import CONFIG_HASH, SERVICE

if TYPE_CHECKING:
    from caracal.launcher.compose_model import Service
    from caracal.launcher.project import Project


def ensure_container(project: Project, service: Service, image_id: str) -> None:
    secrets = secret_files(project, service)
    wanted = service.config_hash(image_id, secrets)
    current = project.container(service.name)
    if current is not None and current.labels.get(CONFIG_HASH) != wanted:
        project.say(f"  {service.name}: configuration changed, recreating")
        current.remove(force=True)
        current = None
    if current is None:
        current = project.client.containers.create(**create_args(project, service, wanted, secrets))
    if current.status != "running":
        project.say(f"  {service.name}: starting")
        from docker.errors import APIError

        try:
            current.start()
        except APIError as exc:
            raise start_failure(service, exc) from None


def create_args(
    project: Project, service: Service, config_hash: str, secrets: dict[str, Any]
) -> dict[str, Any]:
    volumes: dict[str, dict[str, str]] = {}
    for mount in service.mounts:
        source = project.volume_name(mount.source) if mount.kind == "volume" else mount.source
        volumes[source] = {"bind": mount.target, "mode": "ro" if mount.read_only else "rw"}
    for name, path in secrets.items():
        volumes[str(path)] = {"bind": f"/run/secrets/{name}", "mode": "ro"}
    labels = {
        **service.labels,
        **project.labels(
            **{
                SERVICE: service.name,
                CONFIG_HASH: config_hash,
                "com.docker.compose.container-number": "1",
                "com.docker.compose.oneoff": "False",
                "com.docker.compose.project.config_files": str(project.stack.path),
                "com.docker.compose.project.working_dir": str(project.stack.path.parent),
            }
        ),
    }
    args: dict[str, Any] = {
        "image": service.image,
        "name": project.container_name(service.name),
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
        "network": project.network_name,
        "networking_config": {
            project.network_name: project.client.api.create_endpoint_config(aliases=[service.name])
        },
        "detach": True,
    }
    if service.healthcheck is not None:
        args["healthcheck"] = service.healthcheck.to_docker()
    if service.restart != "no":
        args["restart_policy"] = {"Name": service.restart}
    return {k: v for k, v in args.items() if v is not None}


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
