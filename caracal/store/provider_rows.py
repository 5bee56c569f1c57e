"""Provider rows and their catalog (resources and actions)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, select

from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec
from caracal.store import meta
from caracal.store.schema import provider_actions, provider_resources, providers


def exists(conn: Connection, name: str) -> bool:
    return (
        conn.execute(select(providers.c.name).where(providers.c.name == name)).first() is not None
    )


def credential_ref(conn: Connection, name: str) -> str | None:
    return conn.execute(select(providers.c.credential_ref).where(providers.c.name == name)).scalar()


def save(conn: Connection, spec: ProviderSpec, credential_ref: str | None) -> None:
    """Insert or replace a provider and its whole catalog."""
    now = time.time()
    row: dict[str, Any] = {
        "service_type": spec.service_type,
        "base_url": spec.base_url,
        "auth": spec.auth,
        "header_name": spec.header_name,
        "health_path": spec.health_path,
        "credential_ref": credential_ref,
        "updated_at": now,
    }
    meta.bump_authority(conn)  # runtime replicas cache the MCP servers behind the version
    if exists(conn, spec.name):
        conn.execute(providers.update().where(providers.c.name == spec.name).values(**row))
        conn.execute(delete(provider_actions).where(provider_actions.c.provider == spec.name))
        conn.execute(delete(provider_resources).where(provider_resources.c.provider == spec.name))
    else:
        conn.execute(providers.insert().values(name=spec.name, created_at=now, **row))
    if spec.resources:
        conn.execute(
            provider_resources.insert(),
            [
                {
                    "provider": spec.name,
                    "resource_id": r.resource_id,
                    "description": r.description,
                    "position": i,
                }
                for i, r in enumerate(spec.resources)
            ],
        )
    if spec.actions:
        conn.execute(
            provider_actions.insert(),
            [
                {
                    "provider": spec.name,
                    "resource_id": a.resource_id,
                    "action_id": a.action_id,
                    "method": a.method,
                    "path_prefix": a.path_prefix,
                    "position": i,
                }
                for i, a in enumerate(spec.actions)
            ],
        )


def remove(conn: Connection, name: str) -> None:
    meta.bump_authority(conn)  # runtime replicas cache the MCP servers behind the version
    conn.execute(delete(provider_actions).where(provider_actions.c.provider == name))
    conn.execute(delete(provider_resources).where(provider_resources.c.provider == name))
    conn.execute(delete(providers).where(providers.c.name == name))


def load_all(conn: Connection, name: str | None = None) -> list[tuple[ProviderSpec, str | None]]:
    """Every provider (or one) with its credential reference, ordered by name."""
    query = select(providers)
    res_query = select(provider_resources)
    act_query = select(provider_actions)
    if name is not None:
        query = query.where(providers.c.name == name)
        res_query = res_query.where(provider_resources.c.provider == name)
        act_query = act_query.where(provider_actions.c.provider == name)
    return specs_from_rows(
        conn.execute(query).mappings(),
        conn.execute(res_query).mappings(),
        conn.execute(act_query).mappings(),
    )


def specs_from_rows(
    provider_rows: Iterable[Mapping[Any, Any]],
    resource_rows: Iterable[Mapping[Any, Any]],
    action_rows: Iterable[Mapping[Any, Any]],
) -> list[tuple[ProviderSpec, str | None]]:
    """Providers from the rows of their three tables (from the store, or from a backup's
    dumps), ordered by name, catalogs in their stored order."""
    resources: dict[str, list[tuple[int, ProviderResource]]] = {}
    for r in resource_rows:
        resources.setdefault(r["provider"], []).append(
            (r["position"], ProviderResource(r["resource_id"], r["description"]))
        )
    actions: dict[str, list[tuple[int, ProviderAction]]] = {}
    for a in action_rows:
        actions.setdefault(a["provider"], []).append(
            (
                a["position"],
                ProviderAction(a["resource_id"], a["action_id"], a["method"], a["path_prefix"]),
            )
        )
    out = []
    for p in sorted(provider_rows, key=lambda row: row["name"]):
        spec = ProviderSpec(
            name=p["name"],
            base_url=p["base_url"],
            service_type=p["service_type"],
            auth=p["auth"],
            header_name=p["header_name"],
            health_path=p["health_path"],
            resources=tuple(r for _, r in sorted(resources.get(p["name"], []), key=_position)),
            actions=tuple(a for _, a in sorted(actions.get(p["name"], []), key=_position)),
        )
        out.append((spec, p["credential_ref"]))
    return out


def _position(item: tuple[int, Any]) -> int:
    return item[0]
