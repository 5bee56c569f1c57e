"""What `caracal up` is doing, as it does it: the phase, the image build's steps, the health
wait of each service. The launcher reports; a front end decides whether and how to show it."""

from __future__ import annotations

from typing import Protocol


class UpWatcher(Protocol):
    def phase(self, name: str) -> None:
        """A new phase begins (`network and volumes`, `building caracal/runtime:local`, ...)."""

    def step(self, done: int, total: int | None, text: str) -> None:
        """Progress within the phase: build step `done` of `total`, layers pulled, ..."""

    def waiting(self, service: str, waited: float, timeout: float) -> None:
        """Still waiting for `service` to be healthy, `waited` seconds out of `timeout`."""


class Unwatched:
    """Reports go nowhere: scripts, `--json`, `--quiet`, and everything but a terminal."""

    def phase(self, name: str) -> None:
        return None

    def step(self, done: int, total: int | None, text: str) -> None:
        return None

    def waiting(self, service: str, waited: float, timeout: float) -> None:
        return None
