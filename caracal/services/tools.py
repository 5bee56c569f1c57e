"""The MCP tool registry: which tools of an MCP server the gate exposes, and the resource and
action scope a mandate must hold to call each one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError as StoreIntegrityError

from caracal.core.errors import ConflictError, NotFoundError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.core.names import check_identifier
from caracal.core.providers import ProviderSpec
from caracal.core.scopes import Catalog, ScopeKind, parse_scope
from caracal.services import change_feed
from caracal.services.probe import auth_headers
from caracal.store import provider_rows, tool_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
MCP_SERVICE_TYPE = "mcp"
MAX_DESCRIPTION = 1000


@dataclass(frozen=True)
class Tool:
    name: str
    server: str
    resource: str
    action: str
    description: str | None
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "server": self.server,
            "resource": self.resource,
            "action": self.action,
            "description": self.description,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class McpServer:
    """What the gate needs per request: where the server lives and its registered tools."""

    name: str
    url: str
    # The provider's last change; the gate starts a new upstream session when it moves.
    revision: float
    tools: Mapping[str, Tool] = field(default_factory=dict)


def _tool(row: Any) -> Tool:
    return Tool(row.name, row.server, row.resource, row.action, row.description, row.created_at)


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(f"Tool {name!r} is not registered; see `caracal tool list`.")


class ToolService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    # ---- queries ------------------------------------------------------------------------
    def all(self, server: str | None = None) -> list[Tool]:
        with self.app.store.read() as conn:
            if server is not None:
                self._mcp_spec(conn, server)
            return [_tool(row) for row in tool_rows.all_rows(conn, server)]

    def get(self, name: str) -> Tool:
        with self.app.store.read() as conn:
            row = tool_rows.get(conn, name)
        if row is None:
            raise _not_found(name)
        return _tool(row)

    def mcp_server(self, server: str) -> McpServer:
        """The MCP server `server` and its tools, read in one transaction; NotFoundError
        unless it is a provider of service type `mcp`."""
        with self.app.store.read() as conn:
            row = tool_rows.server_row(conn, server)
            if row is None or row.service_type != MCP_SERVICE_TYPE:
                raise NotFoundError(f"No MCP server named {server!r} is registered.")
            tools = {t.name: t for t in map(_tool, tool_rows.all_rows(conn, server))}
        return McpServer(row.name, row.base_url, float(row.updated_at), tools)

    def upstream_headers(self, server: str) -> dict[str, str]:
        """The provider's auth header, credential included: for the gate's outbound calls
        only, never to be logged or recorded."""
        with self.app.store.read() as conn:
            spec = self._mcp_spec(conn, server)
            ref = provider_rows.credential_ref(conn, server)
            credential = self.app.vault.get(conn, ref).decode() if ref else None
        return auth_headers(spec, credential)

    # ---- changes ------------------------------------------------------------------------
    def register(
        self,
        name: str,
        server: str,
        resource: str,
        action: str,
        description: str | None = None,
    ) -> Tool:
        try:
            tool = self.app.store.write(
                lambda conn: self.register_in(conn, name, server, resource, action, description)
            )
        except StoreIntegrityError:
            # Registered by someone else between our check and our insert.
            raise _conflict(name, server) from None
        change_feed.publish(self.app, "tool.registered", [name])
        log.info("tool %s registered on %s", name, server)
        return tool

    def register_in(
        self,
        conn: Connection,
        name: str,
        server: str,
        resource: str,
        action: str,
        description: str | None = None,
    ) -> Tool:
        """Register a tool in the caller's transaction."""
        check_identifier(name, "tool name")
        description = (description or "").strip() or None
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise ValidationError(
                f"The description is {len(description)} characters; keep it under "
                f"{MAX_DESCRIPTION}."
            )
        spec = self._mcp_spec(conn, server)
        catalog = Catalog({server: spec.catalog()})
        _require_scope(catalog, server, resource, "resource")
        _require_scope(catalog, server, action, "action")
        if not catalog.declares(resource, action):
            raise ValidationError(
                f"{server} declares action {action} on another resource than {resource}; a "
                "tool maps to a declared (resource, action) pair: see `caracal provider show "
                f"{server}`."
            )
        existing = tool_rows.get(conn, name)
        if existing is not None:
            raise _conflict(name, existing.server)
        created = tool_rows.insert(conn, name, server, resource, action, description)
        tool = Tool(name, server, resource, action, description, created)
        self.app.ledger.record(conn, NewEvent("tool.registered", _summary(tool)))
        return tool

    def remove(self, name: str) -> Tool:
        tool = self.app.store.write(lambda conn: self.remove_in(conn, name))
        change_feed.publish(self.app, "tool.removed", [name])
        log.info("tool %s removed from %s", name, tool.server)
        return tool

    def remove_in(self, conn: Connection, name: str) -> Tool:
        """Remove a tool in the caller's transaction."""
        row = tool_rows.get(conn, name)
        if row is None:
            raise _not_found(name)
        tool = _tool(row)
        tool_rows.remove(conn, name)
        self.app.ledger.record(conn, NewEvent("tool.removed", _summary(tool)))
        return tool

    # ---- helpers ------------------------------------------------------------------------
    @staticmethod
    def _mcp_spec(conn: Connection, server: str) -> ProviderSpec:
        rows = provider_rows.load_all(conn, server)
        if not rows:
            raise NotFoundError(f"Provider {server!r} does not exist; see `caracal provider list`.")
        spec = rows[0][0]
        if spec.service_type != MCP_SERVICE_TYPE:
            raise ValidationError(
                f"Provider {server!r} has service type {spec.service_type!r}, not "
                f"{MCP_SERVICE_TYPE!r}; tools belong to MCP servers (`caracal provider add NAME "
                "--service-type mcp --base-url URL`)."
            )
        return spec


def _require_scope(catalog: Catalog, server: str, text: str, kind: ScopeKind) -> None:
    scope = parse_scope(text)
    if scope.provider != server:
        raise ValidationError(
            f"{text!r} is a scope of provider {scope.provider!r}; a tool of {server!r} needs "
            f"provider:{server}:{kind}:<id>."
        )
    catalog.require_scopes([text], kind)


def _conflict(name: str, server: str) -> ConflictError:
    return ConflictError(
        f"Tool {name!r} is already registered (server {server!r}); remove it first with "
        f"`caracal tool remove {name}`."
    )


def _summary(tool: Tool) -> dict[str, Any]:
    return {
        "name": tool.name,
        "server": tool.server,
        "resource": tool.resource,
        "action": tool.action,
        "description": tool.description,
    }
