"""The workspace's declarative state as the store holds it now, in the file's shape and
order (so an export, a plan and a digest all see the same thing)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import Connection

from caracal.core.durations import format_duration, parse_duration
from caracal.core.errors import ValidationError
from caracal.core.workspace_state import (
    ActionEntry,
    PolicyEntry,
    PrincipalEntry,
    ProviderEntry,
    ResourceEntry,
    ToolEntry,
    WorkspaceState,
)
from caracal.store import meta, policy_rows, principal_rows, provider_rows, tool_rows

LAST_APPLIED = "declarative.last_applied"
LAST_APPLIED_SHA = "declarative.last_applied_sha256"


def read_state(
    conn: Connection,
    references: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> WorkspaceState:
    """`references`: the credential_env each provider was last applied with (the store keeps
    the sealed credential, not where it came from); `settings`: those in effect."""
    references = references or {}
    providers = []
    for spec, _ref in sorted(provider_rows.load_all(conn), key=lambda row: row[0].name):
        env = None
        if spec.auth != "none":
            env = references.get(spec.name) or default_credential_env(spec.name)
        providers.append(
            ProviderEntry(
                name=spec.name,
                base_url=spec.base_url,
                service_type=spec.service_type,
                auth=spec.auth,
                header_name=spec.header_name,
                health_path=spec.health_path,
                credential_env=env,
                resources=sorted(
                    (
                        ResourceEntry(id=r.resource_id, description=r.description)
                        for r in spec.resources
                    ),
                    key=lambda r: r.id,
                ),
                actions=sorted(
                    (
                        ActionEntry(
                            resource=a.resource_id,
                            id=a.action_id,
                            method=a.method,
                            path_prefix=a.path_prefix,
                        )
                        for a in spec.actions
                    ),
                    key=lambda a: (a.resource, a.id),
                ),
            )
        )
    rows = principal_rows.all_rows(conn)
    names = {str(r["id"]): str(r["name"]) for r in rows}
    status = {str(r["name"]): str(r["status"]) for r in rows}
    principals = sorted(
        (
            PrincipalEntry(
                name=str(r["name"]),
                kind=r["kind"],
                email=r["email"],
                status=r["status"],
            )
            for r in rows
        ),
        key=lambda p: p.name,
    )
    policies = []
    rows_: list[dict[str, Any]] = policy_rows.rows(conn)
    for row in rows_:
        owner = names.get(str(row["principal_id"]), "")
        # A revoked principal's policy grants nothing any more: it is history, like inactive ones.
        if row["status"] != "active" or status.get(owner) == "revoked":
            continue
        policies.append(
            PolicyEntry(
                principal=owner,
                max_validity=duration_text(int(row["max_validity"])),
                resources=sorted(row["resources"]),
                actions=sorted(row["actions"]),
                delegation_depth=int(row["delegation_depth"]),
            )
        )
    policies.sort(key=lambda p: p.principal)
    tools = sorted(
        (
            ToolEntry(
                name=t.name,
                server=t.server,
                resource=t.resource,
                action=t.action,
                description=t.description,
            )
            for t in tool_rows.all_rows(conn)
        ),
        key=lambda t: t.name,
    )
    return WorkspaceState(
        providers=providers,
        principals=principals,
        policies=policies,
        tools=tools,
        settings=dict(sorted((settings or {}).items())),
    )


def state_digest(state: WorkspaceState) -> str:
    """What a plan was computed against: any change to the managed state changes it."""
    return hashlib.sha256(state.canonical().encode("utf-8")).hexdigest()


def last_applied(conn: Connection) -> tuple[str, str] | None:
    """The text and SHA-256 of the file last applied to this workspace, if any."""
    text = meta.get(conn, LAST_APPLIED)
    sha = meta.get(conn, LAST_APPLIED_SHA)
    return (text, sha) if text is not None and sha is not None else None


def default_credential_env(provider: str) -> str:
    return "CARACAL_" + re.sub(r"[^A-Z0-9]", "_", provider.upper()) + "_CREDENTIAL"


def duration_text(seconds: int) -> str | int:
    """The short form when it says exactly the same number of seconds, else the seconds."""
    text = format_duration(seconds)
    try:
        return text if parse_duration(text) == seconds else seconds
    except ValidationError:  # a compound form such as 1m30s: the parser takes one unit
        return seconds
