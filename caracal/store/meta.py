"""Workspace-level key/value facts (workspace id, name)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from caracal.store.schema import meta


def get(conn: Connection, key: str) -> str | None:
    return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()


def put(conn: Connection, key: str, value: str) -> None:
    if get(conn, key) is None:
        conn.execute(meta.insert().values(key=key, value=value))
    else:
        conn.execute(meta.update().where(meta.c.key == key).values(value=value))
