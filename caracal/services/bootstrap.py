"""First rows of a new workspace store."""

from __future__ import annotations

from sqlalchemy import Connection

from caracal.home.paths import WorkspacePaths
from caracal.store import meta
from caracal.store.engine import Store


def initialise_store(store: Store, paths: WorkspacePaths, workspace_id: str, name: str) -> None:
    def work(conn: Connection) -> None:
        meta.put(conn, "workspace_id", workspace_id)
        meta.put(conn, "workspace_name", name)

    store.write(work)
