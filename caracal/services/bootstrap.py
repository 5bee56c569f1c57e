"""First rows of a new workspace store: its identity, the ledger key and the genesis event."""

from __future__ import annotations

import time

from sqlalchemy import Connection

from caracal.core.ledger import NewEvent
from caracal.home.paths import WorkspacePaths
from caracal.services import ledger_keys
from caracal.services.secrets import SecretVault
from caracal.store import ledger_rows, meta
from caracal.store.engine import Store


def initialise_store(
    store: Store, paths: WorkspacePaths, workspace_id: str, name: str, vault: SecretVault
) -> None:
    def work(conn: Connection) -> None:
        meta.put(conn, "workspace_id", workspace_id)
        meta.put(conn, "workspace_name", name)
        ledger_keys.create(conn, vault, paths.keys)
        ledger_rows.append(
            conn,
            [NewEvent("workspace.created", {"workspace": name, "workspace_id": workspace_id})],
            actor="caracal",
            ts_us=int(time.time() * 1_000_000),
            checkpoint_every=1_000_000_000,
            on_checkpoint=None,
        )

    store.write(work)
