"""Fixed hot-path SQL, run straight on the DBAPI cursor of a SQLAlchemy connection.

Building a Core statement costs tens of microseconds per call; issuance, validation and
ledger appends run a handful each, so their statements are written once here, in SQLite's
`:name` style, and translated to psycopg's `%(name)s` style. They run inside the caller's
SQLAlchemy transaction (same DBAPI connection), so atomicity is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

_NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


class Sql:
    """One statement in SQLite's style: `:name` placeholders (with mapping parameters) or `?`
    (with tuples, cheapest for executemany)."""

    __slots__ = ("postgresql", "sqlite")

    def __init__(self, text: str, *, postgresql: str | None = None) -> None:
        self.sqlite = text
        pg = _NAMED.sub(r"%(\1)s", postgresql or text)
        self.postgresql = pg.replace("?", "%s")

    def for_(self, conn: Connection) -> str:
        return self.postgresql if conn.dialect.name == "postgresql" else self.sqlite


def _cursor(conn: Connection) -> Any:
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def one(
    conn: Connection, sql: Sql, params: Mapping[str, Any] | Sequence[Any]
) -> tuple[Any, ...] | None:
    cur = _cursor(conn)
    try:
        cur.execute(sql.for_(conn), params)
        row = cur.fetchone()
    finally:
        cur.close()
    return tuple(row) if row is not None else None


def all_rows(
    conn: Connection, sql: Sql, params: Mapping[str, Any] | Sequence[Any]
) -> list[tuple[Any, ...]]:
    cur = _cursor(conn)
    try:
        cur.execute(sql.for_(conn), params)
        rows = cur.fetchall()
    finally:
        cur.close()
    return [tuple(r) for r in rows]


def run(conn: Connection, sql: Sql, params: Mapping[str, Any] | Sequence[Any]) -> int:
    cur = _cursor(conn)
    try:
        cur.execute(sql.for_(conn), params)
        return int(cur.rowcount)
    finally:
        cur.close()


def run_many(conn: Connection, sql: Sql, rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> None:
    cur = _cursor(conn)
    try:
        cur.executemany(sql.for_(conn), list(rows))
    finally:
        cur.close()
