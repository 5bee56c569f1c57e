"""Versioned schema migrations, applied in order on open.

Each migration module defines its own tables (frozen as they were at that version) and an
`upgrade(conn)` function. Versions are recorded in `caracal_schema`; a store newer than this
code is refused rather than guessed at.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, select

from caracal.core.errors import ConfigError
from caracal.store import schema


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    module: str  # imported only when the migration runs: opening a current store needs none

    @property
    def upgrade(self) -> Callable[[Connection], None]:
        found: Callable[[Connection], None] = importlib.import_module(
            f"{__name__}.{self.module}"
        ).upgrade
        return found


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", "v001_initial"),
    Migration(2, "authority", "v002_authority"),
    Migration(3, "tools", "v003_tools"),
    Migration(4, "tree heads", "v004_tree_heads"),
)
LATEST = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table(schema.schema_versions.name):
        return 0
    version = conn.execute(
        select(schema.schema_versions.c.version)
        .order_by(schema.schema_versions.c.version.desc())
        .limit(1)
    ).scalar()
    return int(version or 0)


def upgrade(store, target: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """Bring `store` to `target` (default: latest). Returns the resulting version."""
    goal = LATEST if target is None else target
    with store.read() as conn:
        version = current_version(conn)
    _refuse_newer(version)
    if version >= goal:
        return version

    def work(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
        found = current_version(conn)
        _refuse_newer(found)
        if found == 0:
            schema.schema_versions.create(conn)
        for migration in MIGRATIONS:
            if found < migration.version <= goal:
                migration.upgrade(conn)
                conn.execute(
                    schema.schema_versions.insert().values(
                        version=migration.version, name=migration.name, applied_at=time.time()
                    )
                )
                found = migration.version
        return found

    return int(store.write(work))


def _refuse_newer(version: int) -> None:
    if version > LATEST:
        raise ConfigError(
            f"This workspace's store is at schema version {version}, newer than this Caracal "
            f"understands ({LATEST}); upgrade Caracal."
        )
