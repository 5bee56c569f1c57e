"""What Flow can know before anything heavy is imported: which workspace it will open and
whether that workspace finished onboarding. Plain file reads, so the first screen appears
while the store, crypto and config libraries are still loading in a worker."""

from __future__ import annotations

import os
from typing import Any

from caracal.home.flow_state import read_state
from caracal.home.paths import HomePaths


def peek(
    requested: str | None, env: dict[str, str] | None = None
) -> tuple[str | None, dict[str, Any]]:
    environment = os.environ if env is None else env
    home = HomePaths.from_env()
    name = requested or environment.get("CARACAL_WORKSPACE")
    if not name:
        try:
            name = home.active_file.read_text().strip() or None
        except OSError:
            name = None
    if not name or not home.workspace(name).config.exists():
        return None, {}
    return name, read_state(home.workspace(name).flow_state)


def onboarded(state: dict[str, Any]) -> bool:
    return bool(state.get("onboarding", {}).get("done", False))
