"""Version 4: the ledger becomes a verifiable log: a Merkle tree over the events, a signed tree
head kept with the head row after every write, the interior nodes a proof needs, and indexes
that find the events behind a mandate's or a principal's state.

The chained events are unchanged. Checkpoints signed the chain every N events and left the
newest events unsigned; they are replaced by signed tree heads (`ledger_checkpoints` now keeps
a history of heads). This migration computes the tree over the existing events; it cannot sign
(the key is in the vault), so the head stays unsigned until the workspace's first open after
the upgrade signs it (`caracal.services.ledger_head`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, Text

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


_MANDATE_LIFE = "type IN ('mandate.issued', 'mandate.delegated', 'mandate.revoked')"
_PRINCIPAL_LIFE = (
    "type IN ('principal.registered', 'principal.key_rotated', 'principal.suspended', "
    "'principal.activated', 'principal.revoked')"
)


def upgrade(conn: Connection) -> None:
    conn.exec_driver_sql(
        f"CREATE INDEX ix_ledger_events_mandate_life ON ledger_events (mandate_id) "
        f"WHERE {_MANDATE_LIFE}"
    )
    conn.exec_driver_sql(
        f"CREATE INDEX ix_ledger_events_principal_life ON ledger_events (principal_id, seq) "
        f"WHERE {_PRINCIPAL_LIFE}"
    )
    for name, sql_type in _NEW_HEAD_COLUMNS:
        conn.exec_driver_sql(f"ALTER TABLE ledger_head ADD COLUMN {name} {sql_type}")
    conn.exec_driver_sql("DROP TABLE ledger_checkpoints")
    metadata.create_all(conn)
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
