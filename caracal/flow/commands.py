"""The command palette: one provider per area, each offering that area's commands.

A command is "go to the area, then run one of its screen actions". Screens list theirs in a
module-level `COMMANDS` of (title, action) pairs; nothing is imported until the palette opens.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from caracal.flow.areas import AREAS, Area

if TYPE_CHECKING:
    from textual.app import App


def _commands(area: Area) -> list[tuple[str, str | None]]:
    listed: list[tuple[str, str | None]] = [(f"Go to {area.title}", None)]
    try:
        module = importlib.import_module(f"caracal.flow.screens.{area.key}")
    except ImportError:
        return listed
    listed += [
        (f"{area.title}: {title}", action) for title, action in getattr(module, "COMMANDS", [])
    ]
    return listed


def _run(app: App[object], area: str, action: str | None) -> None:
    app.goto(area, action)  # type: ignore[attr-defined]


def _provider_for(area: Area) -> type[Provider]:
    class AreaCommands(Provider):
        async def discover(self) -> Hits:
            for title, action in _commands(area):
                yield DiscoveryHit(title, partial(_run, self.app, area.key, action), help=area.help)

        async def search(self, query: str) -> Hits:
            matcher = self.matcher(query)
            for title, action in _commands(area):
                score = matcher.match(title)
                if score > 0:
                    yield Hit(
                        score,
                        matcher.highlight(title),
                        partial(_run, self.app, area.key, action),
                        help=area.help,
                    )

    AreaCommands.__name__ = f"{area.title.replace(' ', '')}Commands"
    return AreaCommands


def area_providers() -> set[Any]:
    return {_provider_for(area) for area in AREAS}
