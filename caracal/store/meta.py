"""Workspace-level key/value facts (workspace id, name)."""

from __future__ import annotations

from sqlalchemy import Connection

from caracal.store import raw
from caracal.store.raw import Sql
from caracal.store.schema import meta

_GET = Sql("SELECT value FROM meta WHERE key = :key")


def get(conn: Connection, key: str) -> str | None:
    row = raw.one(conn, _GET, {"key": key})
    return str(row[0]) if row else None


def put(conn: Connection, key: str, value: str) -> None:
    if get(conn, key) is None:
        conn.execute(meta.insert().values(key=key, value=value))
    else:
        conn.execute(meta.update().where(meta.c.key == key).values(value=value))
