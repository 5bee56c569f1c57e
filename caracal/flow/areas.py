"""The areas of Flow, in the order the sidebar, the digit keys and the palette show them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Area:
    key: str  # screen name
    title: str
    digit: str  # quick key ("" for none)
    help: str


AREAS: tuple[Area, ...] = (
    Area("dashboard", "Dashboard", "1", "Workspace, store, counts, ledger status, recent activity"),
    Area("workspaces", "Workspaces", "2", "Create, switch and delete workspaces"),
    Area("providers", "Providers", "3", "Systems agents act on, their credentials and catalogs"),
    Area(
        "principals", "Principals", "4", "Humans, orchestrators, workers, services and their keys"
    ),
    Area("policies", "Policies", "5", "Upper bounds on what each principal may be granted"),
    Area("mandates", "Mandates", "6", "Issue, validate, delegate and revoke mandates"),
    Area("delegation", "Delegation", "7", "The delegation tree of a mandate"),
    Area("ledger", "Ledger", "8", "Every decision and change, hash-chained"),
    Area("backups", "Backups", "9", "Create, verify and restore archives"),
    Area("logs", "Logs", "0", "The workspace log"),
    Area("settings", "Settings", "", "Configuration, preferences and keys"),
    Area("help", "Help", "", "Every key binding"),
)

BY_KEY = {a.key: a for a in AREAS}
