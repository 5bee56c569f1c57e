"""Flow's persistent per-workspace state (`flow_state.json`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from caracal.home.atomic import atomic_write_text

DEFAULT_STATE: dict[str, Any] = {
    "version": 1,
    "onboarding": {"done": False, "step": None},
    "preferences": {"theme": "textual-dark", "confirm_destructive": True},
    "recent_actions": [],
}


def default_state() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_STATE)


def read_state(path: Path) -> dict[str, Any]:
    """The saved state over the defaults; a missing or unreadable file gives the defaults."""
    merged = default_state()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, RecursionError):  # RecursionError: `[[[[...`
        return merged
    if isinstance(data, dict):
        merged.update(data)
    return merged


def write_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(state, indent=2, sort_keys=True) + "\n")
