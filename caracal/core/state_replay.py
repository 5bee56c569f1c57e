"""Authority state derived from the ledger alone.

Every row a decision reads (principals and their status, their keys and the keys' status,
policies, mandates and their revocation, providers' definitions, MCP tool mappings), and every
kept tree head, is made by an event. Replaying the events in order gives the state the tables must hold; `ledger verify`
and a restore compare the two and name the first row that differs.

Events written before a field was recorded simply do not state it: such a field is not
compared (`None` in the expected row means "not recorded").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from caracal.core.ledger import Row

# A row as the replay expects it: column -> value (None: the events do not say).
Expected = dict[str, Any]

# The events that make a mandate's and a principal's state. The store indexes them (table
# ledger_state_events) so a decision can check one row against its few events quickly.
MANDATE_LIFE_TYPES = ("mandate.issued", "mandate.delegated", "mandate.revoked")
PRINCIPAL_LIFE_TYPES = (
    "principal.registered",
    "principal.key_rotated",
    "principal.suspended",
    "principal.activated",
    "principal.revoked",
)
LIFE_TYPES = frozenset(MANDATE_LIFE_TYPES + PRINCIPAL_LIFE_TYPES)

_STATUS_EVENTS = {
    "principal.suspended": "suspended",
    "principal.activated": "active",
    "principal.revoked": "revoked",
}


@dataclass
class ExpectedState:
    principals: dict[str, Expected] = field(default_factory=dict)
    keys: dict[str, Expected] = field(default_factory=dict)
    policies: dict[str, Expected] = field(default_factory=dict)
    mandates: dict[str, Expected] = field(default_factory=dict)
    providers: dict[str, Expected] = field(default_factory=dict)
    tools: dict[str, Expected] = field(default_factory=dict)
    kept_heads: dict[str, Expected] = field(default_factory=dict)
    life_index: dict[str, Expected] = field(default_factory=dict)

    def tables(self) -> dict[str, dict[str, Expected]]:
        return {
            "principals": self.principals,
            "principal_keys": self.keys,
            "policies": self.policies,
            "mandates": self.mandates,
            "providers": self.providers,
            "tools": self.tools,
            "ledger_checkpoints": self.kept_heads,
            "ledger_state_events": self.life_index,
        }


class ReplayError(ValueError):
    """An event that cannot have been written by Caracal (it refers to nothing, or its
    payload is malformed)."""


class Replayer:
    """Applies state-changing events one at a time, in sequence order (rows as stored)."""

    def __init__(self) -> None:
        self.state = ExpectedState()

    def apply(self, row: Row) -> None:
        seq, type_, principal_id, mandate_id, payload_text = row[0], row[2], row[4], row[5], row[7]
        if type_ in LIFE_TYPES:
            self.state.life_index[str(seq)] = {
                "type": type_,
                "principal_id": principal_id,
                "mandate_id": mandate_id,
            }
        handler = _HANDLERS.get(type_)
        if handler is None:
            return
        try:
            payload = json.loads(payload_text)
            if not isinstance(payload, dict):
                raise TypeError("payload is not an object")
            handler(self.state, principal_id, mandate_id, payload)
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise ReplayError(f"event {seq} ({type_}) cannot be replayed: {exc}") from None


def replay(rows: Iterable[Row]) -> ExpectedState:
    replayer = Replayer()
    for row in rows:
        replayer.apply(row)
    return replayer.state


def _registered(state: ExpectedState, pid: str | None, _m: str | None, p: dict[str, Any]) -> None:
    assert pid is not None
    state.principals[pid] = {"name": p["name"], "kind": p["kind"], "status": "active"}
    state.keys[p["kid"]] = {
        "principal_id": pid,
        "status": "active",
        "public_key_sha256": p.get("public_key_sha256"),
    }


def _key_rotated(state: ExpectedState, pid: str | None, _m: str | None, p: dict[str, Any]) -> None:
    revoked = bool(p["old_keys_revoked"])
    for kid in p["old_kids"]:
        if kid in state.keys:
            state.keys[kid]["status"] = "revoked" if revoked else "retired"
    state.keys[p["new_kid"]] = {
        "principal_id": pid,
        "status": "active",
        "public_key_sha256": p.get("new_key_sha256"),
    }


def _status(status: str) -> Any:
    def apply(state: ExpectedState, pid: str | None, _m: str | None, p: dict[str, Any]) -> None:
        if pid not in state.principals:
            raise KeyError(f"unknown principal {pid}")
        state.principals[pid]["status"] = status

    return apply


def _policy_created(
    state: ExpectedState, pid: str | None, _m: str | None, p: dict[str, Any]
) -> None:
    state.policies[p["policy_id"]] = {
        "principal_id": pid,
        "max_validity": p["max_validity"],
        "resources": list(p["resources"]),
        "actions": list(p["actions"]),
        "delegation_depth": p["delegation_depth"],
        "status": "active",
    }


def _policy_deactivated(
    state: ExpectedState, _pid: str | None, _m: str | None, p: dict[str, Any]
) -> None:
    state.policies[p["policy_id"]]["status"] = "inactive"


def _mandate_issued(
    state: ExpectedState, pid: str | None, mid: str | None, p: dict[str, Any]
) -> None:
    assert mid is not None
    state.mandates[mid] = {
        "issuer_id": p["issuer_id"],
        "subject_id": pid,
        "parent_id": p["parent_id"],
        "not_before": p["not_before"],
        "expires_at": p["expires_at"],
        "resources": list(p["resources"]),
        "actions": list(p["actions"]),
        "depth": p["delegation_depth"],
        "revoked": False,
        "kid": p.get("kid"),
        "token_sha256": p.get("token_sha256"),
        "intent_hash": p.get("intent_hash"),
        "root_id": p.get("root_id"),
        "policy_id": p.get("policy_id"),
        "issued_at": p.get("issued_at"),
    }


def _mandate_revoked(
    state: ExpectedState, _pid: str | None, mid: str | None, _p: dict[str, Any]
) -> None:
    state.mandates[str(mid)]["revoked"] = True


def _provider_saved(
    state: ExpectedState, _pid: str | None, _m: str | None, p: dict[str, Any]
) -> None:
    state.providers[p["name"]] = {"definition_sha256": p.get("definition_sha256")}


def _provider_removed(
    state: ExpectedState, _pid: str | None, _m: str | None, p: dict[str, Any]
) -> None:
    state.providers.pop(p["name"], None)
    # A provider's tools go with it (the store cascades the delete).
    for name in [n for n, t in state.tools.items() if t["server"] == p["name"]]:
        del state.tools[name]


def _tool_registered(
    state: ExpectedState, _pid: str | None, _m: str | None, p: dict[str, Any]
) -> None:
    state.tools[p["name"]] = {
        "server": p["server"],
        "resource": p["resource"],
        "action": p["action"],
    }


def _tool_removed(
    state: ExpectedState, _pid: str | None, _m: str | None, p: dict[str, Any]
) -> None:
    state.tools.pop(p["name"], None)


def _head_kept(state: ExpectedState, _pid: str | None, _m: str | None, p: dict[str, Any]) -> None:
    state.kept_heads[str(p["size"])] = {"root": p["root"], "ts": p["ts"]}


_HANDLERS: dict[str, Any] = {
    "principal.registered": _registered,
    "principal.key_rotated": _key_rotated,
    **{kind: _status(status) for kind, status in _STATUS_EVENTS.items()},
    "policy.created": _policy_created,
    "policy.deactivated": _policy_deactivated,
    "mandate.issued": _mandate_issued,
    "mandate.delegated": _mandate_issued,
    "mandate.revoked": _mandate_revoked,
    "provider.added": _provider_saved,
    "provider.updated": _provider_saved,
    "provider.imported": _provider_saved,
    "provider.removed": _provider_removed,
    "tool.registered": _tool_registered,
    "tool.removed": _tool_removed,
    "ledger.head_kept": _head_kept,
}


@dataclass(frozen=True)
class Difference:
    table: str
    key: str
    column: str | None  # None: the whole row is missing or should not exist
    expected: Any
    found: Any

    def describe(self) -> str:
        if self.column is None:
            if self.found is None:
                return f"{self.table} row {self.key} is missing (the events created it)"
            return f"{self.table} row {self.key} was not made by any event (it was injected)"
        return (
            f"{self.table} row {self.key}, column {self.column}: the events say "
            f"{self.expected!r}, the table holds {self.found!r}"
        )


def first_difference(
    expected: ExpectedState, found: dict[str, dict[str, Expected]]
) -> Difference | None:
    """Compare the tables (as the store holds them, same shape as `expected.tables()`)."""
    for table, wanted in expected.tables().items():
        actual = found.get(table, {})
        for key in sorted(wanted.keys() | actual.keys()):
            want, have = wanted.get(key), actual.get(key)
            if want is None:
                return Difference(table, key, None, None, have)
            if have is None:
                return Difference(table, key, None, want, None)
            for column, value in want.items():
                if value is not None and have.get(column) != value:
                    return Difference(table, key, column, value, have.get(column))
    return None
