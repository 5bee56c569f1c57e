"""Workspace-level key/value facts (workspace id, name, authority version)."""

from __future__ import annotations

import secrets
import sqlite3
import threading

from sqlalchemy import Connection

from caracal.store import raw
from caracal.store.raw import Sql
from caracal.store.schema import meta

_GET = Sql("SELECT value FROM meta WHERE key = :key")
# Changes in the same transaction as anything that can turn an allow into a deny (a mandate
# revoked, a principal's status, keys retired or revoked): a runtime replica that reads it
# unchanged may keep using what it cached.
AUTHORITY_VERSION = "authority_version"


def get(conn: Connection, key: str) -> str | None:
    row = raw.one(conn, _GET, {"key": key})
    return str(row[0]) if row else None


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
