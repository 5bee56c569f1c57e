"""Principal kinds, lifecycle states and who may grant authority to whom."""

from __future__ import annotations

from typing import Final

KINDS: Final = ("human", "orchestrator", "worker", "service")
STATUSES: Final = ("active", "suspended", "revoked")

# source kind -> kinds it may issue or delegate to
_DIRECTIONS: Final[dict[str, frozenset[str]]] = {
    "human": frozenset(KINDS),
    "orchestrator": frozenset({"orchestrator", "worker", "service"}),
    "worker": frozenset({"worker", "service"}),
    "service": frozenset(),
}


def may_grant(source_kind: str, target_kind: str) -> bool:
    return target_kind in _DIRECTIONS.get(source_kind, frozenset())


def allowed_targets(source_kind: str) -> list[str]:
    return [k for k in KINDS if may_grant(source_kind, k)]
