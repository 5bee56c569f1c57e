"""Version 2: principals and their keys, policies, mandates and the hash-chained ledger."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

principals = Table(
    "principals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("email", String(254)),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

principal_keys = Table(
    "principal_keys",
    metadata,
    Column("kid", String(40), primary_key=True),
    Column("principal_id", String(40), ForeignKey("principals.id"), nullable=False, index=True),
    Column("public_pem", Text, nullable=False),
    Column("secret_ref", String(96)),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float),
)

policies = Table(
    "policies",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("principal_id", String(40), ForeignKey("principals.id"), nullable=False, index=True),
    Column("max_validity", Integer, nullable=False),
    Column("resources", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("delegation_depth", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deactivated_at", Float),
)

mandates = Table(
    "mandates",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("issuer_id", String(40), ForeignKey("principals.id"), nullable=False),
    Column("subject_id", String(40), ForeignKey("principals.id"), nullable=False, index=True),
    Column("parent_id", String(40), ForeignKey("mandates.id"), index=True),
    Column("root_id", String(40), nullable=False),
    Column("kid", String(40), nullable=False),
    Column("policy_id", String(40)),
    Column("issued_at", BigInteger, nullable=False, index=True),
    Column("not_before", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("resources", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("depth", Integer, nullable=False),
    Column("intent_hash", String(64)),
    Column("token", Text, nullable=False),
    Column("revoked_at", Float),
    Column("revoked_reason", Text),
)

ledger_events = Table(
    "ledger_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("type", String(48), nullable=False),
    Column("actor", String(128)),
    Column("principal_id", String(40)),
    Column("mandate_id", String(40)),
    Column("reason_code", String(48)),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # Filters list newest first: with seq in the index, the first page is an index walk, no sort.
    Index("ix_ledger_events_type_seq", "type", "seq"),
    Index("ix_ledger_events_principal_seq", "principal_id", "seq"),
    Index("ix_ledger_events_mandate_seq", "mandate_id", "seq"),
)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("seq_to", BigInteger, primary_key=True, autoincrement=False),
    Column("seq_from", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("kid", String(40), nullable=False),
    Column("signature", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

ledger_keys = Table(
    "ledger_keys",
    metadata,
    Column("kid", String(40), primary_key=True),
    Column("public_pem", Text, nullable=False),
    Column("secret_ref", String(96), nullable=False),
    Column("created_at", Float, nullable=False),
)


def upgrade(conn: Connection) -> None:
    metadata.create_all(conn)
    # The head row exists from the start, so concurrent first appends lock it instead of
    # racing to insert it.
    conn.execute(metadata.tables["ledger_head"].insert().values(id=1, seq=0, hash="0" * 64))
