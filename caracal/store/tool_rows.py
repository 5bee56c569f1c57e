"""Rows of the MCP tool registry."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, select

from caracal.store import meta
from caracal.store.schema import providers, tools


def get(conn: Connection, name: str) -> Row[Any] | None:
    return conn.execute(select(tools).where(tools.c.name == name)).first()


def all_rows(conn: Connection, server: str | None = None) -> Sequence[Row[Any]]:
    query = select(tools).order_by(tools.c.server, tools.c.name)
    if server is not None:
        query = query.where(tools.c.server == server)
    return conn.execute(query).all()


def insert(
    conn: Connection, name: str, server: str, resource: str, action: str, description: str | None
) -> float:
    now = time.time()
    meta.bump_authority(conn)  # runtime replicas cache the tool registry behind the version
    conn.execute(
        tools.insert().values(
            name=name,
            server=server,
            resource=resource,
            action=action,
            description=description,
            created_at=now,
        )
    )
    return now


def remove(conn: Connection, name: str) -> None:
    meta.bump_authority(conn)
    conn.execute(delete(tools).where(tools.c.name == name))


def server_row(conn: Connection, server: str) -> Row[Any] | None:
    """The provider row a tool's server names (service type, base URL, last change)."""
    return conn.execute(select(providers).where(providers.c.name == server)).first()
