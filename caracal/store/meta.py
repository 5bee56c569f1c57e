"""Workspace-level key/value facts (workspace id, name, authority version)."""

from __future__ import annotations

import secrets
import sqlite3
import threading
from typing import Any

from sqlalchemy import Connection

from caracal.store import raw
from caracal.store.raw import Sql
from caracal.store.schema import meta

_GET = Sql("SELECT value FROM meta WHERE key = :key")
_GET_TWO = Sql("SELECT key, value FROM meta WHERE key IN (:a, :b)")
# Changes in the same transaction as anything that can turn an allow into a deny (a mandate
# revoked, a principal's status, keys retired or revoked): a runtime replica that reads it
# unchanged may keep using what it cached. Also with every write to what issuance keeps behind
# it (principals registered, keys added, policies created or deactivated: issuance_parties).
AUTHORITY_VERSION = "authority_version"


def get(conn: Connection, key: str) -> str | None:
    row = raw.one(conn, _GET, {"key": key})
    return str(row[0]) if row else None


def get_many(conn: Connection, keys: tuple[str, str]) -> dict[str, str]:
    """Two keys in one statement: those present, with their values."""
    rows = raw.all_rows(conn, _GET_TWO, {"a": keys[0], "b": keys[1]})
    return {str(k): str(v) for k, v in rows}


def put(conn: Connection, key: str, value: str) -> None:
    if get(conn, key) is None:
        conn.execute(meta.insert().values(key=key, value=value))
    else:
        conn.execute(meta.update().where(meta.c.key == key).values(value=value))


def bump_authority(conn: Connection) -> None:
    put(conn, AUTHORITY_VERSION, secrets.token_hex(8))


def authority_version(conn: Connection) -> str:
    return get(conn, AUTHORITY_VERSION) or ""


class SqliteAuthorityVersion:
    """The authority version of an SQLite store through a private read-only connection per
    thread: one statement, no pool, no transaction (each statement sees the latest commit)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def read(self) -> str:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            self._local.conn = conn
        row = conn.execute(_GET.sqlite, {"key": AUTHORITY_VERSION}).fetchone()
        return str(row[0]) if row else ""


class PostgresAuthorityVersion:
    """The authority version of a PostgreSQL store through one connection kept for it, in
    autocommit (each statement sees the latest commit): one round trip, no pool checkout, no
    ping, no transaction. Not for concurrent use: one caller at a time."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._conn: Any = None

    def read(self) -> str:
        if self._conn is None:
            pooled = self.engine.raw_connection()
            pooled.driver_connection.autocommit = True
            self._conn = pooled
        try:
            cursor = self._conn.driver_connection.execute(
                "SELECT value FROM meta WHERE key = %s", (AUTHORITY_VERSION,)
            )
            row = cursor.fetchone()
        except Exception:
            self.close(broken=True)
            raise
        return str(row[0]) if row else ""

    def close(self, *, broken: bool = False) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if broken:
                conn.invalidate()
            else:
                conn.driver_connection.autocommit = False
                conn.close()
