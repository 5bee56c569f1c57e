"""First rows of a new workspace store: its identity, the ledger key and the genesis event,
under the first signed tree head."""

from __future__ import annotations

import time

from sqlalchemy import Connection

from caracal.core.ledger import NewEvent
from caracal.core.tree_head import TreeHead
from caracal.home.paths import WorkspacePaths
from caracal.services.ledger_head import LedgerHeads
from caracal.services.secrets import SecretVault
from caracal.store import ledger_rows, meta
from caracal.store.engine import Store


def initialise_store(
    store: Store, paths: WorkspacePaths, workspace_id: str, name: str, vault: SecretVault
) -> None:
    heads = LedgerHeads(
        workspace_id=lambda: workspace_id,
        keys_dir=paths.keys,
        vault=lambda: vault,
        witnesses=list,  # the new workspace's config names none yet
    )

    def work(conn: Connection) -> TreeHead:
        meta.put(conn, "workspace_id", workspace_id)
        meta.put(conn, "workspace_name", name)
        ts_us = int(time.time() * 1_000_000)
        head = ledger_rows.read_head(conn, lock=True)
        appended = ledger_rows.append(
            conn,
            [NewEvent("workspace.created", {"workspace": name, "workspace_id": workspace_id})],
            head=head,
            actor="caracal",
            ts_us=ts_us,
        )
        return heads.sign(conn, appended, ts_us)

    heads.committed(store.write(work))
    heads.close()
