"""Version 4: the ledger becomes a verifiable log: a Merkle tree over the events, a signed tree
head kept with the head row after every write, the interior nodes a proof needs, and an index
of the events behind a mandate's or a principal's state.

The chained events are unchanged. Checkpoints signed the chain every N events and left the
newest events unsigned; they are replaced by signed tree heads (`ledger_checkpoints` now keeps
a history of heads). This migration computes the tree over the existing events; it cannot sign
(the key is in the vault), so the head stays unsigned until the workspace's first open after
the upgrade signs it (`caracal.services.ledger_head`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, String, Table, Text

from caracal.core.merkle import Frontier, leaf_hash

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
    frontier = Frontier()
    nodes: list[dict[str, object]] = []
    last = 0
    while True:
        rows = conn.exec_driver_sql(
            f"SELECT seq, hash FROM ledger_events WHERE seq > {last} ORDER BY seq LIMIT {_BATCH}"  # noqa: S608 - numbers
        ).fetchall()
        if not rows:
            break
        for seq, digest in rows:
            if seq != frontier.size + 1:
                # A gap is for `ledger verify` to name; the tree covers the unbroken prefix.
                rows = []
                break
            for level, idx, node in frontier.append(leaf_hash(digest), NODE_LEVEL):
                nodes.append({"level": level, "idx": idx, "hash": node.hex()})
        if nodes:
            conn.execute(ledger_nodes.insert(), nodes)
            nodes = []
        if not rows:
            break
        last = rows[-1][0]
    conn.exec_driver_sql(
        "UPDATE ledger_head SET root = ?, frontier = ? WHERE id = 1"
        if conn.dialect.name == "sqlite"
        else "UPDATE ledger_head SET root = %s, frontier = %s WHERE id = 1",
        (frontier.root().hex(), frontier.encode()),
    )
