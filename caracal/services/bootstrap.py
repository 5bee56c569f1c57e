"""First rows of a new workspace store."""

from __future__ import annotations

import time

from sqlalchemy import Connection

from caracal.core.ledger import NewEvent
from caracal.home.paths import WorkspacePaths
from caracal.store import ledger_rows, meta
from caracal.store.engine import Store


def initialise_store(store: Store, paths: WorkspacePaths, workspace_id: str, name: str) -> None:
    def work(conn: Connection) -> None:
        meta.put(conn, "workspace_id", workspace_id)
        meta.put(conn, "workspace_name", name)
        ledger_rows.append(
            conn,
            [NewEvent("workspace.created", {"workspace": name, "workspace_id": workspace_id})],
            actor="caracal",
            ts_us=int(time.time() * 1_000_000),
            checkpoint_every=1_000_000_000,
            on_checkpoint=None,
        )

    store.write(work)
