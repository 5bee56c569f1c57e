"""Inclusion and consistency proofs from the store's tree, each checked before it is handed
out (by the same code an auditor runs: `caracal.core.proofs`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from caracal.core.errors import IntegrityError, NotFoundError, ValidationError
from caracal.core.merkle import consistency_path, inclusion_path
from caracal.core.proofs import (
    CONSISTENCY_FORMAT,
    INCLUSION_FORMAT,
    ProofError,
    check_consistency,
    check_inclusion,
)
from caracal.core.tree_head import TreeHead
from caracal.services.ledger_head import PinnedKeys
from caracal.store import ledger_rows
from caracal.store.engine import Store
from caracal.store.schema import ledger_events


def _signed_head(conn: Connection, workspace_id: str) -> TreeHead:
    head = ledger_rows.read_head(conn).signed(workspace_id)
    if head is None:
        raise IntegrityError("The ledger head is not signed; run `caracal ledger verify`.")
    return head


def inclusion_proof(
    store: Store, pinned: PinnedKeys, workspace_id: str, seq: int
) -> dict[str, Any]:
    with store.read(snapshot=True) as conn:
        head = _signed_head(conn, workspace_id)
        if not 1 <= seq <= head.size:
            raise NotFoundError(f"Event {seq} is not in the ledger (it has {head.size} events).")
        row = (
            conn.execute(select(ledger_events).where(ledger_events.c.seq == seq)).mappings().first()
        )
        if row is None:
            raise IntegrityError(
                f"Event {seq} is missing from the store; run `caracal ledger verify`."
            )
        path = inclusion_path(seq - 1, head.size, lambda s, n: ledger_rows.subtree_root(conn, s, n))
    doc = {
        "format": INCLUSION_FORMAT,
        "event": {column: row[column] for column in ledger_rows.COLUMNS},
        "leaf_index": seq - 1,
        "tree_size": head.size,
        "audit_path": [h.hex() for h in path],
        "head": head.to_dict(),
    }
    _checked(doc, pinned, head, check_inclusion)
    return doc


def consistency_proof(
    store: Store, pinned: PinnedKeys, workspace_id: str, old: TreeHead
) -> dict[str, Any]:
    """Proof that today's tree extends the tree of `old` (a head saved earlier)."""
    if old.workspace_id != workspace_id:
        raise ValidationError(f"That head belongs to workspace {old.workspace_id}, not this one.")
    key = pinned.get(old.kid)
    if key is None or not old.verify(key):
        raise IntegrityError("The saved head is not signed by this workspace's ledger key.")
    with store.read(snapshot=True) as conn:
        new = _signed_head(conn, workspace_id)
        if old.size > new.size:
            raise IntegrityError(
                f"The saved head covers {old.size} events but the ledger has {new.size}: events "
                "were removed (the store was rolled back)."
            )
        path = consistency_path(
            old.size, new.size, lambda s, n: ledger_rows.subtree_root(conn, s, n)
        )
    doc = {
        "format": CONSISTENCY_FORMAT,
        "old_head": old.to_dict(),
        "new_head": new.to_dict(),
        "proof": [h.hex() for h in path],
    }
    _checked(doc, pinned, new, check_consistency)
    return doc


def _checked(doc: dict[str, Any], pinned: PinnedKeys, head: TreeHead, check: Any) -> None:
    key = pinned.get(head.kid)
    try:
        check(doc, key)
    except ProofError as exc:
        raise IntegrityError(
            f"The ledger does not prove it: {exc}; run `caracal ledger verify`."
        ) from None
