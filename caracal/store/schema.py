"""The current table model, used by every query. Migrations build it step by step; a test
checks that a migrated database matches these definitions exactly."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()


schema_versions = Table(
    "caracal_schema",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(64), nullable=False),
    Column("applied_at", Float, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

providers = Table(
    "providers",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("service_type", String(64), nullable=False),
    Column("base_url", Text, nullable=False),
    Column("auth", String(16), nullable=False),
    Column("header_name", String(128)),
    Column("health_path", Text, nullable=False),
    Column("credential_ref", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

provider_resources = Table(
    "provider_resources",
    metadata,
    Column(
        "provider",
        String(64),
        ForeignKey("providers.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("resource_id", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("position", Integer, nullable=False),
)

provider_actions = Table(
    "provider_actions",
    metadata,
    Column("provider", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("action_id", String(64), primary_key=True),
    Column("method", String(16), nullable=False),
    Column("path_prefix", Text, nullable=False),
    Column("position", Integer, nullable=False),
    ForeignKeyConstraint(
        ["provider", "resource_id"],
        ["provider_resources.provider", "provider_resources.resource_id"],
        ondelete="CASCADE",
    ),
)
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

# The events that make a mandate's or a principal's state (see caracal.core.state_replay
# LIFE_TYPES), by mandate and by principal: a decision checks a row against its few events
# without walking the ledger. Written with the events (decisions are not in it); derivable
# from the events, and compared with them by `ledger verify`.
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

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),  # the tree size: the newest event's seq
    Column("hash", String(64), nullable=False),  # the newest event's hash
    Column("root", String(64)),  # Merkle root over events 1..seq
    Column("frontier", Text),  # the tree's perfect-subtree roots, largest first (hex)
    Column("ts", BigInteger),  # the signed head's time (µs)
    Column("kid", String(40)),  # the ledger key that signed it
    Column("signature", Text),  # ES256 over caracal.core.tree_head.head_message
)

# Interior nodes of the Merkle tree for subtrees of 256 leaves and more: an inclusion or
# consistency proof reads these instead of rehashing the events below them.
ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
)

# Signed tree heads kept as history: one at least every `ledger.checkpoint_every` events and
# one per `caracal ledger checkpoint`.
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

ledger_keys = Table(
    "ledger_keys",
    metadata,
    Column("kid", String(40), primary_key=True),
    Column("public_pem", Text, nullable=False),
    Column("secret_ref", String(96), nullable=False),
    Column("created_at", Float, nullable=False),
)

tools = Table(
    "tools",
    metadata,
    Column("name", String(64), primary_key=True),
    Column(
        "server",
        String(64),
        ForeignKey("providers.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("resource", String(200), nullable=False),
    Column("action", String(200), nullable=False),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
)
