"""The authority tables compared with the state the ledger's events produce (see
`caracal.core.state_replay`): `ledger verify`, backup verify and restores name the first row
that differs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from caracal.core.keys import pem_sha256
from caracal.core.ledger import Row
from caracal.core.state_replay import Expected, ReplayError, first_difference, replay
from caracal.store.provider_rows import specs_from_rows
from caracal.store.schema import metadata

Found = dict[str, dict[str, Expected]]
_PROVIDER_TABLES = ("providers", "provider_resources", "provider_actions")


def _list(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text  # not what any event says: reported as a difference


def _principal(r: Mapping[str, Any]) -> tuple[str, Expected]:
    return r["id"], {"name": r["name"], "kind": r["kind"], "status": r["status"]}


def _key(r: Mapping[str, Any]) -> tuple[str, Expected]:
    return r["kid"], {
        "principal_id": r["principal_id"],
        "status": r["status"],
        "public_key_sha256": pem_sha256(str(r["public_pem"])),
    }


def _policy(r: Mapping[str, Any]) -> tuple[str, Expected]:
    return r["id"], {
        "principal_id": r["principal_id"],
        "max_validity": r["max_validity"],
        "resources": _list(r["resources"]),
        "actions": _list(r["actions"]),
        "delegation_depth": r["delegation_depth"],
        "status": r["status"],
    }


def _mandate(r: Mapping[str, Any]) -> tuple[str, Expected]:
    return r["id"], {
        "issuer_id": r["issuer_id"],
        "subject_id": r["subject_id"],
        "parent_id": r["parent_id"],
        "not_before": r["not_before"],
        "expires_at": r["expires_at"],
        "resources": _list(r["resources"]),
        "actions": _list(r["actions"]),
        "depth": r["depth"],
        "revoked": r["revoked_at"] is not None,
        "kid": r["kid"],
        "token_sha256": hashlib.sha256(str(r["token"]).encode("ascii", "replace")).hexdigest(),
        "intent_hash": r["intent_hash"],
        "root_id": r["root_id"],
        "policy_id": r["policy_id"],
        "issued_at": r["issued_at"],
    }


def _tool(r: Mapping[str, Any]) -> tuple[str, Expected]:
    return r["name"], {"server": r["server"], "resource": r["resource"], "action": r["action"]}


def _kept_head(r: Mapping[str, Any]) -> tuple[str, Expected]:
    return str(r["size"]), {"root": r["root"], "ts": r["ts"]}


def _life(r: Mapping[str, Any]) -> tuple[str, Expected]:
    return str(r["seq"]), {
        "type": r["type"],
        "principal_id": r["principal_id"],
        "mandate_id": r["mandate_id"],
    }


_CONVERTERS: dict[str, Callable[[Mapping[str, Any]], tuple[str, Expected]]] = {
    "principals": _principal,
    "principal_keys": _key,
    "policies": _policy,
    "mandates": _mandate,
    "tools": _tool,
    "ledger_checkpoints": _kept_head,
    "ledger_state_events": _life,
}
STATE_TABLES = frozenset(_CONVERTERS) | frozenset(_PROVIDER_TABLES)


class StateCollector:
    """Collects the decision-relevant columns of authority rows, table by table, in the shape
    of the replay (rows from the store, or from a backup's dumps)."""

    def __init__(self) -> None:
        self.found: Found = {name: {} for name in (*_CONVERTERS, "providers")}
        self._provider_rows: dict[str, list[Mapping[Any, Any]]] = {t: [] for t in _PROVIDER_TABLES}

    def add(self, table: str, row: Mapping[Any, Any]) -> None:
        if table in _PROVIDER_TABLES:
            self._provider_rows[table].append(dict(row))
            return
        try:
            key, expected = _CONVERTERS[table](row)
        except (KeyError, TypeError, ValueError):
            key, expected = str(row.get("id") or row.get("kid") or row.get("name")), {"$": row}
        self.found[table][str(key)] = expected

    def result(self) -> Found:
        specs = specs_from_rows(*(self._provider_rows[t] for t in _PROVIDER_TABLES))
        self.found["providers"] = {
            spec.name: {"definition_sha256": spec.definition_sha256()} for spec, _ in specs
        }
        return self.found


def stored_state(conn: Connection) -> Found:
    collector = StateCollector()
    for name in sorted(STATE_TABLES):
        for row in conn.execute(select(metadata.tables[name])).mappings():
            collector.add(name, row)
    return collector.result()


def compare(events: list[Row], found: Found) -> tuple[int, str | None]:
    """(rows compared, the first difference or None)."""
    try:
        expected = replay(events)
    except ReplayError as exc:
        return 0, str(exc)
    rows = sum(len(t) for t in found.values())
    difference = first_difference(expected, found)
    return rows, difference.describe() if difference else None


def compare_state(conn: Connection, events: list[Row]) -> tuple[int, str | None]:
    return compare(events, stored_state(conn))
