"""Policies: upper bounds on what a principal may be granted."""

from __future__ import annotations

import json
import time

from sqlalchemy import Connection, select

from caracal.core.mandates import Policy
from caracal.store import meta, raw
from caracal.store.raw import Sql
from caracal.store.schema import policies


def _policy(row: object) -> Policy:
    return Policy(
        id=row.id,  # type: ignore[attr-defined]
        principal_id=row.principal_id,  # type: ignore[attr-defined]
        max_validity=row.max_validity,  # type: ignore[attr-defined]
        resources=tuple(json.loads(row.resources)),  # type: ignore[attr-defined]
        actions=tuple(json.loads(row.actions)),  # type: ignore[attr-defined]
        delegation_depth=row.delegation_depth,  # type: ignore[attr-defined]
        active=row.status == "active",  # type: ignore[attr-defined]
    )


def insert(conn: Connection, policy: Policy) -> None:
    conn.execute(
        policies.insert().values(
            id=policy.id,
            principal_id=policy.principal_id,
            max_validity=policy.max_validity,
            resources=json.dumps(list(policy.resources)),
            actions=json.dumps(list(policy.actions)),
            delegation_depth=policy.delegation_depth,
            status="active",
            created_at=time.time(),
        )
    )
    meta.bump_authority(conn)  # issuance keeps the active policy behind the version


_ACTIVE = Sql(
    "SELECT id, principal_id, max_validity, resources, actions, delegation_depth, status "
    "FROM policies WHERE principal_id = :pid AND status = 'active'"
)


def active_for(conn: Connection, principal_id: str) -> Policy | None:
    row = raw.one(conn, _ACTIVE, {"pid": principal_id})
    if row is None:
        return None
    return Policy(
        id=row[0],
        principal_id=row[1],
        max_validity=int(row[2]),
        resources=tuple(json.loads(row[3])),
        actions=tuple(json.loads(row[4])),
        delegation_depth=int(row[5]),
        active=row[6] == "active",
    )


def get(conn: Connection, policy_id: str) -> Policy | None:
    row = conn.execute(select(policies).where(policies.c.id == policy_id)).first()
    return _policy(row) if row else None


def rows(conn: Connection, principal_id: str | None = None) -> list[dict[str, object]]:
    query = select(policies).order_by(policies.c.created_at)
    if principal_id is not None:
        query = query.where(policies.c.principal_id == principal_id)
    out = []
    for row in conn.execute(query):
        data = dict(row._mapping)
        data["resources"] = json.loads(data["resources"])
        data["actions"] = json.loads(data["actions"])
        out.append(data)
    return out


def deactivate(conn: Connection, policy_id: str) -> None:
    conn.execute(
        policies.update()
        .where(policies.c.id == policy_id)
        .values(status="inactive", deactivated_at=time.time())
    )
    meta.bump_authority(conn)
