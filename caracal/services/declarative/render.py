"""The exported file: YAML in a stable order, with comments naming what was left out and why."""

from __future__ import annotations

from typing import Any

import yaml

from caracal.core.workspace_state import WorkspaceState

HEADER = """\
# Caracal workspace state: review changes, then `caracal plan -f FILE` and `caracal apply -f FILE`.
# Left out on purpose:
#   - credentials: a provider names the environment variable read when it is created
#     (credential_env), never the value;
#   - principals' keys: each workspace makes its own, and a private key never leaves the vault;
#   - mandates: they are issued, not declared, and never created from this file;
#   - inactive policies and the policies of revoked principals: they grant nothing any more;
#   - settings that belong to the host (store, listening address, Redis, ledger witnesses):
#     they locate things or hold secrets; see `caracal config list`.
"""


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the model's order, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render(state: WorkspaceState, workspace: str) -> str:
    data = state.model_dump(mode="json", exclude_defaults=False)
    for provider in data["providers"]:
        _drop_none(provider, "header_name", "credential_env")
    for principal in data["principals"]:
        _drop_none(principal, "email")
    for tool in data["tools"]:
        _drop_none(tool, "description")
    parts = [HEADER, f"# Exported from workspace {workspace}.\n"]
    parts.append(_dump({"version": data["version"]}))
    for section in ("providers", "principals", "policies", "tools", "settings"):
        parts.append("\n")
        parts.append(_dump({section: data[section]}))
    return "".join(parts)


def _drop_none(entry: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if entry.get(key) is None:
            entry.pop(key, None)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
