"""How `caracal mandate` shows mandates to a person: the listing, one mandate, the delegation
tree. Imported by the command that shows them, so `caracal mandate` stays light."""

from __future__ import annotations

from typing import Any

from caracal.cli.common import echo, table
from caracal.core.durations import relative, when
from caracal.core.scopes import short_scope


def print_listing(rows: list[dict[str, Any]], names: dict[str, Any]) -> None:
    table(
        ["id", "status", "issuer", "subject", "expires", "parent", "actions"],
        [
            [
                r["id"],
                r["status"],
                names.get(r["issuer_id"], r["issuer_id"]),
                names.get(r["subject_id"], r["subject_id"]),
                relative(r["expires_at"]),
                r["parent_id"] or "-",
                ",".join(short_scope(a).split(":", 1)[-1] for a in r["actions"]),
            ]
            for r in rows
        ],
        empty="No mandates.",
    )


def print_mandate(row: dict[str, Any]) -> None:
    for key in (
        "id",
        "status",
        "issuer_id",
        "subject_id",
        "parent_id",
        "root_id",
        "kid",
        "depth",
        "intent_hash",
    ):
        echo(f"{key + ':':13} {row[key] if row[key] is not None else '-'}")
    echo(f"{'not before:':13} {when(row['not_before'])}")
    echo(f"{'expires:':13} {when(row['expires_at'])} ({relative(row['expires_at'])})")
    if row["revoked_at"]:
        echo(f"{'revoked:':13} {when(row['revoked_at'])} {row['revoked_reason'] or ''}".rstrip())
    for scope in row["resources"]:
        echo(f"{'resource:':13} {scope}")
    for scope in row["actions"]:
        echo(f"{'action:':13} {scope}")


def print_graph(data: dict[str, Any], names: dict[str, Any]) -> None:
    def label(row: dict[str, Any], mark: str = "") -> str:
        who = f"{names.get(row['issuer_id'], row['issuer_id'])} -> {names.get(row['subject_id'], row['subject_id'])}"
        return f"{row['id']}{mark}  {who}  [{row['status']}]"

    indent = ""
    for row in data["ancestors"]:
        echo(indent + label(row))
        indent += "    "
    echo(indent + label(data["mandate"], " *"))

    def walk(children: list[dict[str, Any]], prefix: str) -> None:
        for i, child in enumerate(children):
            last = i == len(children) - 1
            echo(prefix + ("└── " if last else "├── ") + label(child))
            walk(child["children"], prefix + ("    " if last else "│   "))

    walk(data["descendants"], indent)
