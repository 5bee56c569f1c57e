"""Waiting for a service to be started or healthy within the one health budget of an `up`,
and saying why it is not: its exit code, its last probe, the end of its log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from caracal.core.errors import UnavailableError

if TYPE_CHECKING:
    from docker.models.containers import Container

    from caracal.launcher.project import Project


class Clock:
    """The one health budget of an `up`: every service's wait counts against it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout

    @property
    def waited(self) -> float:
        return time.monotonic() - self.started


def wait_for(project: Project, name: str, condition: str, clock: Clock) -> None:
    """Until service `name` is started (`service_started`) or else healthy; a service that
    stopped, is unhealthy or runs out of the budget is an UnavailableError saying why."""
    deadline = clock.deadline
    announced = False
    while True:
        container = project.container(name)
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
            project.say(f"  {name}: waiting for health")
            project.watch.phase(f"waiting for {name} to be healthy")
            announced = True
        project.watch.waiting(name, clock.waited, clock.timeout)
        time.sleep(0.2)
        container.reload()


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
