"""Version 4: the ledger becomes a verifiable log: a Merkle tree over the events, a signed tree
head kept with the head row after every write, the interior nodes a proof needs, and an index
of the events behind a mandate's or a principal's state.

An event's hash becomes its Merkle leaf hash, SHA-256(0x00 || canonical JSON), so the chain
and the tree share one hash. The existing events are re-chained under it, after their old chain
is checked from the first event to the head: a ledger already broken is refused here rather
than re-hashed into looking whole (restore the workspace from a backup). Checkpoints signed the
chain every N events and left the newest events unsigned; they are replaced by signed tree heads
(`ledger_checkpoints` now keeps a history of heads). This migration cannot sign (the key is in
the vault), so the head stays unsigned until the workspace's first open after the upgrade signs
it (`caracal.services.ledger_head`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, String, Table, Text

from caracal.core.errors import IntegrityError
from caracal.core.ledger import GENESIS_HASH, event_hash, legacy_event_hash
from caracal.core.merkle import Frontier

# Subtrees of 2**NODE_LEVEL leaves and more are kept (see caracal.store.ledger_rows).
NODE_LEVEL = 8
_BATCH = 20_000

metadata = MetaData()

ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
)

ledger_state_events = Table(
    "ledger_state_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(48), nullable=False),
    Column("principal_id", String(40)),
    Column("mandate_id", String(40)),
    Index("ix_ledger_state_events_mandate", "mandate_id", "seq"),
    Index("ix_ledger_state_events_principal", "principal_id", "seq"),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("kid", String(40), nullable=False),
    Column("signature", Text, nullable=False),
)

_NEW_HEAD_COLUMNS = (
    ("root", "VARCHAR(64)"),
    ("frontier", "TEXT"),
    ("ts", "BIGINT"),
    ("kid", "VARCHAR(40)"),
    ("signature", "TEXT"),
)


_FILL_LIFE = (
    "INSERT INTO ledger_state_events (seq, type, principal_id, mandate_id) "
    "SELECT seq, type, principal_id, mandate_id FROM ledger_events WHERE type IN ("
    "'mandate.issued', 'mandate.delegated', 'mandate.revoked', 'principal.registered', "
    "'principal.key_rotated', 'principal.suspended', 'principal.activated', 'principal.revoked')"
)


def upgrade(conn: Connection) -> None:
    for name, sql_type in _NEW_HEAD_COLUMNS:
        conn.exec_driver_sql(f"ALTER TABLE ledger_head ADD COLUMN {name} {sql_type}")
    conn.exec_driver_sql("DROP TABLE ledger_checkpoints")
    metadata.create_all(conn)
    conn.exec_driver_sql(_FILL_LIFE)
    frontier = _rechain(conn)
    conn.exec_driver_sql(
        "UPDATE ledger_head SET hash = ?, root = ?, frontier = ? WHERE id = 1"
        if conn.dialect.name == "sqlite"
        else "UPDATE ledger_head SET hash = %s, root = %s, frontier = %s WHERE id = 1",
        (_last_hash(conn), frontier.root().hex(), frontier.encode()),
    )


_COLUMNS = "seq, ts, type, actor, principal_id, mandate_id, reason_code, payload, prev_hash, hash"


def _rechain(conn: Connection) -> Frontier:
    """Check the old chain up to the head, re-hash every event the new way, build the tree."""
    head_seq, head_hash = conn.exec_driver_sql("SELECT seq, hash FROM ledger_head").one()
    placeholder = "?" if conn.dialect.name == "sqlite" else "%s"
    update = (
        f"UPDATE ledger_events SET prev_hash = {placeholder}, hash = {placeholder} "  # noqa: S608
        f"WHERE seq = {placeholder}"
    )
    frontier = Frontier()
    old_prev, new_prev, last = GENESIS_HASH, GENESIS_HASH, 0
    while True:
        rows = conn.exec_driver_sql(
            f"SELECT {_COLUMNS} FROM ledger_events WHERE seq > {last} ORDER BY seq LIMIT {_BATCH}"  # noqa: S608 - numbers
        ).fetchall()
        if not rows:
            break
        changes, nodes = [], []
        for seq, ts, type_, actor, principal, mandate, reason, payload, prev_hash, digest in rows:
            fields = (seq, ts, type_, actor, principal, mandate, reason, payload)
            if (
                seq != last + 1
                or prev_hash != old_prev
                or legacy_event_hash(*fields, prev_hash) != digest
            ):
                raise IntegrityError(
                    f"The ledger is broken at event {last + 1}; it cannot be upgraded. Restore "
                    "the workspace from a backup with the Caracal that wrote it."
                )
            new = event_hash(*fields, new_prev)
            changes.append((new_prev, new, seq))
            for level, idx, node in frontier.append(bytes.fromhex(new), NODE_LEVEL):
                nodes.append({"level": level, "idx": idx, "hash": node.hex()})
            old_prev, new_prev, last = digest, new, seq
        conn.exec_driver_sql(update, changes)
        if nodes:
            conn.execute(ledger_nodes.insert(), nodes)
    if (last, old_prev if last else GENESIS_HASH) != (head_seq, head_hash):
        raise IntegrityError(
            f"The ledger head names event {head_seq} but the ledger ends at event {last}; it "
            "cannot be upgraded. Restore the workspace from a backup."
        )
    return frontier


def _last_hash(conn: Connection) -> str:
    row = conn.exec_driver_sql("SELECT hash FROM ledger_events ORDER BY seq DESC LIMIT 1").first()
    return str(row[0]) if row else GENESIS_HASH
