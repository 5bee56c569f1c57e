"""The dashboard's figures as plain values: what the pulse service reads from the store and
what Flow paints. Standard library only, so a process that has not loaded the store can hold
(and unpickle) them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Expiring:
    mandate_id: str
    subject: str  # the subject's name
    issuer: str
    expires_at: int  # epoch seconds


@dataclass(frozen=True)
class BusyPrincipal:
    principal_id: str
    name: str
    decisions: int
    denied: int


@dataclass(frozen=True)
class Pulse:
    workspace: str
    principals: int
    active_mandates: int
    allowed_per_minute: tuple[int, ...]  # the last hour, oldest minute first
    denied_per_minute: tuple[int, ...]
    denials_by_reason: tuple[tuple[str, int], ...]  # most frequent first
    expiring: tuple[Expiring, ...]  # within the next hour, soonest first
    busiest: tuple[BusyPrincipal, ...]  # most decisions in the last hour first
    head_seq: int
    at: float  # when these figures were read (epoch seconds)

    @property
    def allowed(self) -> int:
        return sum(self.allowed_per_minute)

    @property
    def denied(self) -> int:
        """Every denial of the hour, with those of tokens tied to no key (which are recorded
        in aggregate, so they have a reason but no minute)."""
        return sum(n for _, n in self.denials_by_reason)


def to_plain(pulse: Pulse) -> dict[str, Any]:
    """The figures as JSON-ready values (`from_plain` reads them back)."""
    return asdict(pulse)


def from_plain(data: dict[str, Any]) -> Pulse:
    """Raises (TypeError, ValueError, KeyError) on anything that is not `to_plain`'s."""
    return Pulse(
        workspace=str(data["workspace"]),
        principals=int(data["principals"]),
        active_mandates=int(data["active_mandates"]),
        allowed_per_minute=tuple(int(n) for n in data["allowed_per_minute"]),
        denied_per_minute=tuple(int(n) for n in data["denied_per_minute"]),
        denials_by_reason=tuple((str(c), int(n)) for c, n in data["denials_by_reason"]),
        expiring=tuple(Expiring(**e) for e in data["expiring"]),
        busiest=tuple(BusyPrincipal(**b) for b in data["busiest"]),
        head_seq=int(data["head_seq"]),
        at=float(data["at"]),
    )
