"""Principals and their public keys."""

from __future__ import annotations

import time

from sqlalchemy import Connection, select

from caracal.core.mandates import Principal
from caracal.store import meta, raw
from caracal.store.raw import Sql
from caracal.store.schema import principal_keys, principals

# An id wins over a name, whatever the row order (names cannot look like ids any more, but an
# older workspace may hold one that does).
_FIND = Sql(
    "SELECT id, name, kind, status FROM principals WHERE id = :ref OR name = :ref "
    "ORDER BY CASE WHEN id = :ref THEN 0 ELSE 1 END LIMIT 1"
)
_BY_ID = Sql("SELECT id, name, kind, status FROM principals WHERE id = :id")


def find(conn: Connection, ref: str) -> Principal | None:
    """By id, else by name."""
    row = raw.one(conn, _FIND, {"ref": ref})
    return Principal(*row) if row else None


def get(conn: Connection, principal_id: str) -> Principal | None:
    row = raw.one(conn, _BY_ID, {"id": principal_id})
    return Principal(*row) if row else None


def detail(conn: Connection, principal_id: str) -> dict[str, object]:
    row = conn.execute(select(principals).where(principals.c.id == principal_id)).one()
    return dict(row._mapping)


def all_rows(conn: Connection) -> list[dict[str, object]]:
    return [
        dict(r._mapping) for r in conn.execute(select(principals).order_by(principals.c.created_at))
    ]


def name_taken(conn: Connection, name: str) -> bool:
    return (
        conn.execute(select(principals.c.id).where(principals.c.name == name)).first() is not None
    )


def insert(conn: Connection, principal: Principal, email: str | None) -> None:
    now = time.time()
    conn.execute(
        principals.insert().values(
            id=principal.id,
            name=principal.name,
            kind=principal.kind,
            email=email,
            status=principal.status,
            created_at=now,
            updated_at=now,
        )
    )
    meta.bump_authority(conn)  # issuance keeps what it read behind the version


def set_status(conn: Connection, principal_id: str, status: str) -> None:
    conn.execute(
        principals.update()
        .where(principals.c.id == principal_id)
        .values(status=status, updated_at=time.time())
    )
    meta.bump_authority(conn)


def add_key(
    conn: Connection, principal_id: str, kid: str, public_pem: str, secret_ref: str
) -> None:
    conn.execute(
        principal_keys.insert().values(
            kid=kid,
            principal_id=principal_id,
            public_pem=public_pem,
            secret_ref=secret_ref,
            status="active",
            created_at=time.time(),
        )
    )
    meta.bump_authority(conn)


def retire_keys(conn: Connection, principal_id: str, *, revoke: bool) -> list[str]:
    """Retire every active key of a principal (still verifying), or revoke every key that is
    not revoked yet (no longer verifying); return the kids changed."""
    statuses = ["active", "retired"] if revoke else ["active"]
    kids = [
        r.kid
        for r in conn.execute(
            select(principal_keys.c.kid).where(
                principal_keys.c.principal_id == principal_id,
                principal_keys.c.status.in_(statuses),
            )
        )
    ]
    if kids:
        conn.execute(
            principal_keys.update()
            .where(principal_keys.c.kid.in_(kids))
            .values(status="revoked" if revoke else "retired", retired_at=time.time())
        )
        meta.bump_authority(conn)
    return kids


_ACTIVE_KEY = Sql(
    "SELECT kid, secret_ref FROM principal_keys WHERE principal_id = :pid AND status = 'active' "
    "ORDER BY created_at DESC LIMIT 1"
)
_KEY = Sql("SELECT principal_id, public_pem, status FROM principal_keys WHERE kid = :kid")


def active_key(conn: Connection, principal_id: str) -> tuple[str, str] | None:
    """(kid, secret_ref) of the key a principal signs with now."""
    row = raw.one(conn, _ACTIVE_KEY, {"pid": principal_id})
    return (str(row[0]), str(row[1])) if row else None


def key(conn: Connection, kid: str) -> tuple[str, str, str] | None:
    """(principal_id, public_pem, status) for one kid."""
    row = raw.one(conn, _KEY, {"kid": kid})
    return (str(row[0]), str(row[1]), str(row[2])) if row else None


def keys_of(conn: Connection, principal_id: str) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            principal_keys.c.kid,
            principal_keys.c.status,
            principal_keys.c.created_at,
            principal_keys.c.retired_at,
            principal_keys.c.public_pem,
        )
        .where(principal_keys.c.principal_id == principal_id)
        .order_by(principal_keys.c.created_at)
    )
    return [dict(r._mapping) for r in rows]


def all_keys(conn: Connection) -> list[tuple[str, str, str, str, str]]:
    """(kid, principal_id, public_pem, key status, principal status) of every key."""
    rows = conn.execute(
        select(
            principal_keys.c.kid,
            principal_keys.c.principal_id,
            principal_keys.c.public_pem,
            principal_keys.c.status,
            principals.c.status,
        )
        .join(principals, principals.c.id == principal_keys.c.principal_id)
        .order_by(principal_keys.c.created_at, principal_keys.c.kid)
    )
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]
