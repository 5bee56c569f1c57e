"""Mandate rows: the signed token, its parsed bounds and its revocation state."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, false, or_, select
from sqlalchemy.sql import literal_column

from caracal.core.mandates import MandateClaims
from caracal.store import mandate_search, meta, raw
from caracal.store.raw import Sql
from caracal.store.schema import mandates, principal_keys, principals

_INSERT = Sql(
    "INSERT INTO mandates (id, issuer_id, subject_id, parent_id, root_id, kid, policy_id, "
    "issued_at, not_before, expires_at, resources, actions, depth, intent_hash, token) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_STATE = Sql("SELECT token, revoked_at FROM mandates WHERE id = :id")


def insert(
    conn: Connection,
    claims: MandateClaims,
    kid: str,
    token: str,
    root_id: str,
    policy_id: str | None,
) -> None:
    raw.run(
        conn,
        _INSERT,
        (
            claims.id,
            claims.issuer_id,
            claims.subject_id,
            claims.parent_id,
            root_id,
            kid,
            policy_id,
            claims.issued_at,
            claims.not_before,
            claims.expires_at,
            json.dumps(list(claims.resources)),
            json.dumps(list(claims.actions)),
            claims.depth,
            claims.intent_hash,
            token,
        ),
    )


def state(conn: Connection, mandate_id: str) -> tuple[str, bool] | None:
    """(token, revoked) of one mandate."""
    row = raw.one(conn, _STATE, {"id": mandate_id})
    return (str(row[0]), row[1] is not None) if row else None


def get(conn: Connection, mandate_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(mandates).where(mandates.c.id == mandate_id)).first()
    return _decode(dict(row._mapping)) if row else None


def find_by_prefix(conn: Connection, prefix: str, limit: int = 2) -> list[str]:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        select(mandates.c.id).where(mandates.c.id.like(escaped + "%", escape="\\")).limit(limit)
    )
    return [r.id for r in rows]


def _decode(data: dict[str, Any]) -> dict[str, Any]:
    data["resources"] = json.loads(data["resources"])
    data["actions"] = json.loads(data["actions"])
    return data


def blocked_ids(now: int, conn: Connection | None = None) -> Any:
    """The ids of mandates validation denies although they are neither revoked nor expired:
    signed with a revoked key, from or to a principal that is not active, or delegated (at
    any depth) below such a mandate (the same checks validation makes on every link).
    Expired and revoked mandates are not seeds: what is delegated below them is expired or
    revoked too.

    Given `conn`, the (few) revoked keys and inactive principals are read first: with none,
    nothing is blocked and no mandate is scanned; else the seeds are found from those lists."""
    revoked_keys: Any = select(principal_keys.c.kid).where(principal_keys.c.status == "revoked")
    inactive: Any = select(principals.c.id).where(principals.c.status != "active")
    if conn is not None:
        revoked_keys = list(conn.execute(revoked_keys).scalars())
        inactive = list(conn.execute(inactive).scalars())
        if not revoked_keys and not inactive:
            return select(mandates.c.id).where(false())
    seeds = select(mandates.c.id).where(
        mandates.c.revoked_at.is_(None),
        mandates.c.expires_at > now,
        or_(
            mandates.c.kid.in_(revoked_keys),
            mandates.c.issuer_id.in_(inactive),
            mandates.c.subject_id.in_(inactive),
        ),
    )
    tree = seeds.cte("blocked", recursive=True)
    tree = tree.union_all(select(mandates.c.id).where(mandates.c.parent_id == tree.c.id))
    return select(tree.c.id)


def blocked_among(conn: Connection, ids: Sequence[str], now: int) -> set[str]:
    """Which of `ids` are blocked (see blocked_ids)."""
    if not ids:
        return set()
    found = conn.execute(
        select(mandates.c.id).where(
            mandates.c.id.in_(list(ids)), mandates.c.id.in_(blocked_ids(now, conn))
        )
    )
    return {r.id for r in found}


def listing(
    conn: Connection,
    *,
    subject_id: str | None = None,
    status: str | None = None,
    now: int,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    blocked_set = blocked_ids(now, conn)
    blocked = mandates.c.id.in_(blocked_set).label("blocked")
    query = select(*(c for c in mandates.c if c.name != "token"), blocked)
    query = query.where(*_filters(subject_id, status, now, search, blocked=blocked_set, conn=conn))
    # Mandate ids start with their creation time: newest first is the primary key, backwards.
    newest_first = mandates.c.id.desc()
    if search and not search.strip().lower().startswith("mnd_"):
        # Walking the key newest first finds common matches at once but reads every row
        # through the index for rare ones: try the newest rows that way, else read the table
        # once and sort what matches (`id || ''` is not the index).
        if limit is not None and offset + limit <= SEARCH_PROBE // 4:
            recent = select(mandates.c.id).order_by(newest_first).limit(SEARCH_PROBE)
            probe = query.where(mandates.c.id.in_(recent.scalar_subquery()))
            rows = conn.execute(probe.order_by(newest_first).offset(offset).limit(limit)).all()
            if len(rows) == limit:
                return [_decode(dict(r._mapping)) for r in rows]
        newest_first = mandates.c.id.concat("").desc()
    query = query.order_by(newest_first).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [_decode(dict(r._mapping)) for r in conn.execute(query)]


SEARCH_PROBE = 2_000  # the newest mandates a search looks through first


def _filters(
    subject_id: str | None,
    status: str | None,
    now: int,
    search: str | None,
    issuer_id: str | None = None,
    *,
    blocked: Any = None,
    conn: Connection | None = None,
) -> list[Any]:
    if blocked is None:
        blocked = blocked_ids(now)
    where: list[Any] = []
    if subject_id:
        where.append(mandates.c.subject_id == subject_id)
    if issuer_id:
        where.append(mandates.c.issuer_id == issuer_id)
    if status == "active":
        # Valid now by the rules validation applies (see blocked_ids).
        where += [
            mandates.c.revoked_at.is_(None),
            mandates.c.expires_at > now,
            mandates.c.not_before <= now,
            mandates.c.id.not_in(blocked),
        ]
    elif status == "pending":
        where += [
            mandates.c.revoked_at.is_(None),
            mandates.c.not_before > now,
            mandates.c.id.not_in(blocked),
        ]
    elif status == "blocked":
        where += [mandates.c.id.in_(blocked)]
    elif status == "expired":
        where += [mandates.c.revoked_at.is_(None), mandates.c.expires_at <= now]
    elif status == "revoked":
        where.append(mandates.c.revoked_at.is_not(None))
    if search:
        assert conn is not None, "a search reads what it can match first"
        where.append(mandate_search.matches(conn, search.strip()))
    return where


def count(
    conn: Connection,
    *,
    status: str | None,
    now: int,
    subject_id: str | None = None,
    search: str | None = None,
    issuer_id: str | None = None,
) -> int:
    from sqlalchemy import func

    blocked = blocked_ids(now, conn) if status in ("active", "pending", "blocked") else None
    where = _filters(subject_id, status, now, search, issuer_id, blocked=blocked, conn=conn)
    query = select(func.count()).select_from(mandates).where(*where)
    return int(conn.execute(query).scalar() or 0)


def subtree(conn: Connection, mandate_id: str) -> list[dict[str, Any]]:
    """The mandate and every descendant (recursive), parents before children."""
    tree = (
        select(mandates.c.id, mandates.c.parent_id, literal_column("0").label("level"))
        .where(mandates.c.id == mandate_id)
        .cte("tree", recursive=True)
    )
    tree = tree.union_all(
        select(mandates.c.id, mandates.c.parent_id, (tree.c.level + 1).label("level")).where(
            mandates.c.parent_id == tree.c.id
        )
    )
    rows = conn.execute(
        select(
            mandates.c.id,
            mandates.c.parent_id,
            mandates.c.subject_id,
            mandates.c.issuer_id,
            mandates.c.expires_at,
            mandates.c.revoked_at,
            mandates.c.revoked_reason,
            tree.c.level,
        )
        .join(tree, tree.c.id == mandates.c.id)
        .order_by(tree.c.level, mandates.c.id)
    )
    return [dict(r._mapping) for r in rows]


def ancestors(conn: Connection, mandate_id: str) -> list[dict[str, Any]]:
    """From the mandate's parent up to its root."""
    out: list[dict[str, Any]] = []
    current = conn.execute(select(mandates.c.parent_id).where(mandates.c.id == mandate_id)).scalar()
    seen: set[str] = set()
    while current and current not in seen:
        seen.add(current)
        row = conn.execute(
            select(
                mandates.c.id,
                mandates.c.parent_id,
                mandates.c.subject_id,
                mandates.c.issuer_id,
                mandates.c.expires_at,
                mandates.c.revoked_at,
            ).where(mandates.c.id == current)
        ).first()
        if row is None:
            break
        out.append(dict(row._mapping))
        current = row.parent_id
    return out


def mark_revoked(conn: Connection, ids: Sequence[str], reason: str | None) -> None:
    if ids:
        conn.execute(
            mandates.update()
            .where(and_(mandates.c.id.in_(list(ids)), mandates.c.revoked_at.is_(None)))
            .values(revoked_at=time.time(), revoked_reason=reason)
        )
        meta.bump_authority(conn)


def live_held_by(conn: Connection, principal_id: str, now: int) -> list[str]:
    """Mandates the principal holds that validate now or will (active or pending), oldest
    first."""
    rows = conn.execute(
        select(mandates.c.id)
        .where(
            mandates.c.subject_id == principal_id,
            mandates.c.revoked_at.is_(None),
            mandates.c.expires_at > now,
            mandates.c.id.not_in(blocked_ids(now, conn)),
        )
        .order_by(mandates.c.id)
    )
    return [r.id for r in rows]


def held_or_issued_by(conn: Connection, principal_id: str) -> list[str]:
    rows = conn.execute(
        select(mandates.c.id).where(
            or_(mandates.c.subject_id == principal_id, mandates.c.issuer_id == principal_id),
            mandates.c.revoked_at.is_(None),
        )
    )
    return [r.id for r in rows]
