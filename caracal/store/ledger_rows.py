"""Ledger rows: chained appends under the head lock, the Merkle tree's head and kept nodes,
the history of signed heads, and reads in sequence order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from caracal.core.ledger import NewEvent, Row, seal
from caracal.core.merkle import Frontier, leaf_hash, node_hash
from caracal.core.state_replay import LIFE_TYPES
from caracal.core.tree_head import TreeHead
from caracal.store import raw
from caracal.store.raw import Sql
from caracal.store.schema import ledger_checkpoints, ledger_events, ledger_nodes

COLUMNS = (
    "seq",
    "ts",
    "type",
    "actor",
    "principal_id",
    "mandate_id",
    "reason_code",
    "payload",
    "prev_hash",
    "hash",
)
# Interior nodes of subtrees with 2**NODE_LEVEL leaves or more are stored (about one row per
# 128 events); smaller subtrees are rehashed from at most 256 event hashes when a proof needs
# them.
NODE_LEVEL = 8

_HEAD_READ = Sql(
    "SELECT seq, hash, root, frontier, ts, kid, signature FROM ledger_head WHERE id = 1"
)
_HEAD = Sql(
    _HEAD_READ.sqlite,
    # PostgreSQL: writers serialise on this row; SQLite's BEGIN IMMEDIATE already did.
    postgresql=_HEAD_READ.sqlite + " FOR UPDATE",
)
_SET_HEAD = Sql(
    "UPDATE ledger_head SET seq = :seq, hash = :hash, root = :root, frontier = :frontier, "
    "ts = :ts, kid = :kid, signature = :sig WHERE id = 1"
)
_INSERT = Sql(
    "INSERT INTO ledger_events (seq, ts, type, actor, principal_id, mandate_id, reason_code, "
    "payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_NODE = Sql("INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)")
_EVENT_HASH = Sql("SELECT hash FROM ledger_events WHERE seq = :seq")
_EVENT_HASHES = Sql(
    "SELECT seq, hash FROM ledger_events WHERE seq >= :lo AND seq <= :hi ORDER BY seq"
)
_NODE = Sql("SELECT hash FROM ledger_nodes WHERE level = :level AND idx = :idx")
_INSERT_LIFE = Sql(
    "INSERT INTO ledger_state_events (seq, type, principal_id, mandate_id) VALUES (?, ?, ?, ?)"
)
_LIFE = (
    "SELECT e.seq, e.type, e.principal_id, e.mandate_id, e.payload FROM ledger_state_events s "
    "JOIN ledger_events e ON e.seq = s.seq WHERE s.{column} = :id ORDER BY s.seq"
)
_MANDATE_LIFE = Sql(_LIFE.format(column="mandate_id"))
_PRINCIPAL_LIFE = Sql(_LIFE.format(column="principal_id"))
_TIP = "SELECT max(seq) FROM ledger_state_events WHERE {column} = :id"
_MANDATE_TIP = Sql(_TIP.format(column="mandate_id"))
_PRINCIPAL_TIP = Sql(_TIP.format(column="principal_id"))


@dataclass(frozen=True, slots=True)
class StoredHead:
    """The head row: the tree over events 1..size and, once signed, its signature."""

    size: int
    last_hash: str
    root: str | None
    frontier: str | None
    ts_us: int | None
    kid: str | None
    signature: str | None

    def signed(self, workspace_id: str) -> TreeHead | None:
        if self.root is None or self.ts_us is None or not self.kid or not self.signature:
            return None
        return TreeHead(
            workspace_id,
            self.size,
            self.root,
            self.last_hash,
            self.ts_us,
            self.kid,
            self.signature,
        )


@dataclass(frozen=True, slots=True)
class Appended:
    """The tree after one append, to be signed and written to the head row (`write_head`)
    before the transaction commits."""

    rows: list[Row]
    size: int
    last_hash: str
    root: str
    frontier: Frontier


def read_head(conn: Connection, *, lock: bool = False) -> StoredHead:
    row = raw.one(conn, _HEAD if lock else _HEAD_READ, {})
    if row is None:
        raise LookupError("the ledger head row is missing")
    seq, digest, root, frontier, ts, kid, signature = row
    return StoredHead(
        int(seq),
        str(digest),
        None if root is None else str(root),
        None if frontier is None else str(frontier),
        None if ts is None else int(ts),
        None if kid is None else str(kid),
        None if signature is None else str(signature),
    )


def head(conn: Connection, *, lock: bool = False) -> tuple[int, str]:
    found = read_head(conn, lock=lock)
    return found.size, found.last_hash


def lock_head(conn: Connection) -> None:
    """Take the ledger head lock before the transaction's first read. On PostgreSQL (READ
    COMMITTED) this serialises a revocation with a delegation from the mandates it revokes,
    which would otherwise each miss the other's uncommitted row; every transaction that changes
    authority takes it first, so none waits for it while holding another lock (no lock-order
    cycle). SQLite's BEGIN IMMEDIATE already serialised every writer."""
    read_head(conn, lock=True)


def append(
    conn: Connection,
    events: Sequence[NewEvent],
    *,
    head: StoredHead,
    actor: str | None,
    ts_us: int,
    frontier: Frontier | None = None,
) -> Appended:
    """Chain `events` after `head` (read under the lock in this transaction), insert them and
    the tree nodes they complete; returns the new tree for `write_head`. `frontier`, when
    given, is the head's tree already decoded (a copy the caller may give away)."""
    tree = frontier if frontier is not None else Frontier.decode(head.size, head.frontier or "")
    rows = seal(events, first_seq=head.size + 1, prev_hash=head.last_hash, ts_us=ts_us, actor=actor)
    raw.run_many(conn, _INSERT, rows)
    lives = [(r[0], r[2], r[4], r[5]) for r in rows if r[2] in LIFE_TYPES]
    if lives:
        raw.run_many(conn, _INSERT_LIFE, lives)
    fromhex = bytes.fromhex  # an event's hash is its leaf hash
    completed = tree.extend_keeping([fromhex(row[9]) for row in rows], NODE_LEVEL)
    if completed:
        raw.run_many(conn, _INSERT_NODE, [(lv, i, h.hex()) for lv, i, h in completed])
    return Appended(rows, rows[-1][0], rows[-1][9], tree.root().hex(), tree)


def write_head(
    conn: Connection, tree: Appended, ts_us: int, kid: str, signature: str
) -> StoredHead:
    """Move the head row to the signed tree (one statement); returns the row as written."""
    encoded = tree.frontier.encode()
    raw.run(
        conn,
        _SET_HEAD,
        {
            "seq": tree.size,
            "hash": tree.last_hash,
            "root": tree.root,
            "frontier": encoded,
            "ts": ts_us,
            "kid": kid,
            "sig": signature,
        },
    )
    return StoredHead(tree.size, tree.last_hash, tree.root, encoded, ts_us, kid, signature)


def set_tree(conn: Connection, root: str, frontier: str) -> None:
    """Set the head's tree without appending (after the nodes were rebuilt)."""
    conn.exec_driver_sql(
        "UPDATE ledger_head SET root = ?, frontier = ? WHERE id = 1"
        if conn.dialect.name == "sqlite"
        else "UPDATE ledger_head SET root = %s, frontier = %s WHERE id = 1",
        (root, frontier),
    )


# ---- the events behind one row ----------------------------------------------------------------
def _life(conn: Connection, sql: Sql, ident: str) -> list[Row]:
    """Shaped like stored rows (what the replay reads), with only the columns it needs."""
    return [
        (seq, 0, type_, None, principal, mandate, None, payload, "", "")
        for seq, type_, principal, mandate, payload in raw.all_rows(conn, sql, {"id": ident})
    ]


def mandate_life(conn: Connection, mandate_id: str) -> list[Row]:
    """The events that issued (or delegated) and revoked one mandate."""
    return _life(conn, _MANDATE_LIFE, mandate_id)


def principal_life(conn: Connection, principal_id: str) -> list[Row]:
    """The events that registered one principal, rotated its keys and changed its status."""
    return _life(conn, _PRINCIPAL_LIFE, principal_id)


def mandate_tip(conn: Connection, mandate_id: str) -> int | None:
    """The sequence number of the newest event of one mandate's life (None: it has none)."""
    row = raw.one(conn, _MANDATE_TIP, {"id": mandate_id})
    return None if row is None or row[0] is None else int(row[0])


def principal_tip(conn: Connection, principal_id: str) -> int | None:
    """The sequence number of the newest event of one principal's life (None: it has none)."""
    row = raw.one(conn, _PRINCIPAL_TIP, {"id": principal_id})
    return None if row is None or row[0] is None else int(row[0])


# ---- the tree, for proofs --------------------------------------------------------------------
def event_hash(conn: Connection, seq: int) -> str | None:
    row = raw.one(conn, _EVENT_HASH, {"seq": seq})
    return None if row is None else str(row[0])


def event_type(conn: Connection, seq: int) -> str | None:
    found = conn.execute(select(ledger_events.c.type).where(ledger_events.c.seq == seq)).first()
    return None if found is None else str(found[0])


def last_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.max(ledger_events.c.seq))).scalar() or 0)


def event_hashes(conn: Connection, lo: int, hi: int) -> list[str]:
    """Event hashes lo..hi (sequence numbers, inclusive); LookupError if one is missing."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(_EVENT_HASHES.for_(conn), {"lo": lo, "hi": hi})
        found = cur.fetchall()
    finally:
        cur.close()
    if len(found) != hi - lo + 1 or any(int(s) != lo + i for i, (s, _) in enumerate(found)):
        raise LookupError(f"events {lo}-{hi} are not all in the ledger")
    return [str(h) for _, h in found]


def subtree_root(conn: Connection, start: int, size: int) -> bytes:
    """Root of the perfect subtree of `size` leaves starting at leaf `start` (0-based)."""
    level = size.bit_length() - 1
    if level >= NODE_LEVEL:
        row = raw.one(conn, _NODE, {"level": level, "idx": start >> level})
        if row is not None:
            return bytes.fromhex(str(row[0]))
        half = size // 2  # not kept (yet): build it from its halves
        return node_hash(subtree_root(conn, start, half), subtree_root(conn, start + half, half))
    frontier = Frontier()
    frontier.extend(leaf_hash(h) for h in event_hashes(conn, start + 1, start + size))
    return frontier.root()


def rebuild_nodes(conn: Connection) -> tuple[str, str]:
    """Recompute the kept nodes and the head's tree from the stored events (after a restore,
    which does not trust nodes from an archive). Returns (root, frontier)."""
    conn.execute(ledger_nodes.delete())
    frontier = Frontier()
    after = 0
    while True:
        batch = conn.execute(
            select(ledger_events.c.seq, ledger_events.c.hash)
            .where(ledger_events.c.seq > after)
            .order_by(ledger_events.c.seq)
            .limit(20_000)
        ).all()
        if not batch:
            break
        nodes = [
            (level, idx, node.hex())
            for _, digest in batch
            for level, idx, node in frontier.append(leaf_hash(digest), NODE_LEVEL)
        ]
        if nodes:
            raw.run_many(conn, _INSERT_NODE, nodes)
        after = int(batch[-1][0])
    root, encoded = frontier.root().hex(), frontier.encode()
    set_tree(conn, root, encoded)
    return root, encoded


# ---- the history of signed heads --------------------------------------------------------------
def insert_checkpoint(conn: Connection, tree_head: TreeHead) -> None:
    conn.execute(
        ledger_checkpoints.insert().values(
            size=tree_head.size,
            root=tree_head.root,
            last_hash=tree_head.last_hash,
            ts=tree_head.ts_us,
            kid=tree_head.kid,
            signature=tree_head.signature,
        )
    )


def last_checkpoint_size(conn: Connection) -> int:
    return int(conn.execute(select(func.max(ledger_checkpoints.c.size))).scalar() or 0)


def checkpoints(conn: Connection, workspace_id: str) -> list[TreeHead]:
    rows = conn.execute(select(ledger_checkpoints).order_by(ledger_checkpoints.c.size))
    return [
        TreeHead(
            workspace_id,
            int(r.size),
            str(r.root),
            str(r.last_hash),
            int(r.ts),
            str(r.kid),
            str(r.signature),
        )
        for r in rows
    ]
