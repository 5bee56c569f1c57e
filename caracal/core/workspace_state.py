"""The declarative file's shape: a strict pydantic model (unknown keys are errors), which also
gives the file's JSON Schema (`caracal export --schema`)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_ID = "https://caracal.dev/schema/workspace-state-1.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceEntry(_Strict):
    id: str
    description: str = ""


class ActionEntry(_Strict):
    resource: str
    id: str
    method: str = "*"
    path_prefix: str = "/"


class ProviderEntry(_Strict):
    name: str
    base_url: str
    service_type: str = "http"
    auth: Literal["none", "api-key", "bearer", "basic", "header"] = "none"
    header_name: str | None = None
    health_path: str = "/"
    credential_env: str | None = Field(
        default=None,
        description="Name of the environment variable that holds the credential when the "
        "provider is created; never the credential itself.",
    )
    resources: list[ResourceEntry] = []
    actions: list[ActionEntry] = []


class PrincipalEntry(_Strict):
    name: str
    kind: Literal["human", "orchestrator", "worker", "service"]
    email: str | None = None
    status: Literal["active", "suspended", "revoked"] = "active"


class PolicyEntry(_Strict):
    principal: str
    max_validity: str | int = Field(description="Seconds, or a duration such as 30m, 1h, 7d.")
    resources: list[str]
    actions: list[str]
    delegation_depth: int = Field(default=0, ge=0, le=16)


class ToolEntry(_Strict):
    name: str
    server: str
    resource: str
    action: str
    description: str | None = None


class WorkspaceState(_Strict):
    """Everything `caracal apply` manages. Mandates, keys and credentials are not part of it."""

    version: Literal[1] = 1
    providers: list[ProviderEntry] = []
    principals: list[PrincipalEntry] = []
    policies: list[PolicyEntry] = []
    tools: list[ToolEntry] = []
    settings: dict[str, int | float | str] = Field(
        default={},
        description="config.yaml settings shared by every copy of the workspace, by dotted key "
        "(e.g. validation.clock_leeway_seconds); settings left out are left alone.",
    )

    def canonical(self) -> str:
        """One text per state, whatever the file's order: for digests and comparisons."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def json_schema() -> dict[str, Any]:
    schema = WorkspaceState.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Caracal workspace state",
        **schema,
    }
