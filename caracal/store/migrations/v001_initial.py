"""Version 1: workspace metadata, the secret vault and providers with their catalogs."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
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

_md = MetaData()

Table(
    "meta",
    _md,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
Table(
    "secrets",
    _md,
    Column("ref", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)
Table(
    "providers",
    _md,
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
Table(
    "provider_resources",
    _md,
    Column(
        "provider", String(64), ForeignKey("providers.name", ondelete="CASCADE"), primary_key=True
    ),
    Column("resource_id", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("position", Integer, nullable=False),
)
Table(
    "provider_actions",
    _md,
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


def upgrade(conn: Connection) -> None:
    _md.create_all(conn)
