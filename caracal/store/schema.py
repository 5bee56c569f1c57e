"""The current table model, used by every query. Migrations build it step by step; a test
checks that a migrated database matches these definitions exactly."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
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
