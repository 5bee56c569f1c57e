"""Version 3: the MCP tool registry (which upstream tools the gate exposes, under which scopes)."""

from __future__ import annotations

from sqlalchemy import Column, Connection, Float, ForeignKey, MetaData, String, Table, Text

metadata = MetaData()

# The providers table as it was at version 2, so the foreign key has something to point at.
Table("providers", metadata, Column("name", String(64), primary_key=True))

tools = Table(
    "tools",
    metadata,
    Column("name", String(64), primary_key=True),
    # A tool belongs to its MCP server: removing the provider removes its tools.
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


def upgrade(conn: Connection) -> None:
    tools.create(conn)
