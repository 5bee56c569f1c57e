"""The condition for a mandate search: a term held by a mandate's id, one of its scopes, or
its subject's or issuer's name (any case).

Scopes are stored as JSON lists, and few distinct lists exist however many mandates hold
them: those lists are kept here (per store, read again only for mandates newer than the last
read, along the primary key), so a term is matched against them in memory and the table is
searched for the exact lists that hold it, or not at all when none does."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, false, func, or_, select

from caracal.store.schema import mandates, principals

_ID_CHARACTERS = frozenset("mnd_0123456789abcdef")


@dataclass
class _ScopeLists:
    last_id: str = ""
    rows: int = 0
    resources: set[str] = field(default_factory=set)
    actions: set[str] = field(default_factory=set)


_known: weakref.WeakKeyDictionary[Any, _ScopeLists] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def scope_lists(conn: Connection) -> _ScopeLists:
    """Every distinct resources and actions list held by a mandate (a superset: a deleted
    mandate's lists stay; that only costs a search a pass over the table)."""
    with _lock:
        known = _known.setdefault(conn.engine, _ScopeLists())
        # Two queries: each alone is read from an index, not the table.
        rows = int(conn.execute(select(func.count()).select_from(mandates)).scalar() or 0)
        last = conn.execute(select(func.max(mandates.c.id))).scalar()
        if rows < known.rows or (last or "") < known.last_id:
            known = _known[conn.engine] = _ScopeLists()  # replaced under us: read afresh
        if (last or "") == known.last_id and rows == known.rows:
            return known
        newer = select(mandates.c.resources, mandates.c.actions).distinct()
        if rows - known.rows == _count_after(conn, known.last_id):
            newer = newer.where(mandates.c.id > known.last_id)  # only inserted since
        for resources, actions in conn.execute(newer):
            known.resources.add(resources)
            known.actions.add(actions)
        known.rows, known.last_id = rows, last or ""
        return known


def _count_after(conn: Connection, last_id: str) -> int:
    query = select(func.count()).select_from(mandates).where(mandates.c.id > last_id)
    return int(conn.execute(query).scalar() or 0)


def matches(conn: Connection, term: str) -> Any:
    """An id's start is a range of the primary key; otherwise each kind of match is added
    only when something can match it."""
    lowered = term.lower()
    if lowered.startswith("mnd_"):
        # Ids go on in hex digits, which sort below "z" in any collation.
        return and_(mandates.c.id >= lowered, mandates.c.id < lowered + "z")
    known = scope_lists(conn)
    anywhere: list[Any] = []
    resources = sorted(v for v in known.resources if lowered in v.lower())
    actions = sorted(v for v in known.actions if lowered in v.lower())
    if resources:
        anywhere.append(mandates.c.resources.in_(resources))
    if actions:
        anywhere.append(mandates.c.actions.in_(actions))
    named = [
        ident
        for ident, name in conn.execute(select(principals.c.id, principals.c.name))
        if lowered in name.lower()
    ]
    if named:
        anywhere += [mandates.c.subject_id.in_(named), mandates.c.issuer_id.in_(named)]
    if set(lowered) <= _ID_CHARACTERS:
        pattern = "%" + lowered.replace("_", "\\_") + "%"
        anywhere.append(mandates.c.id.like(pattern, escape="\\"))
    return or_(*anywhere) if anywhere else false()
