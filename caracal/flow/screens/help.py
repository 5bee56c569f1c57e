"""Help: every key binding, read from the bindings themselves."""

from __future__ import annotations

import importlib

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from caracal.flow.areas import AREAS
from caracal.flow.screens.base import AreaScreen


def _describe(bindings: list[Binding | tuple[str, ...]]) -> list[str]:
    lines = []
    for binding in bindings:
        if isinstance(binding, Binding):
            keys = ", ".join(k.strip() for k in binding.key.split(","))
            lines.append(f"  {keys:<22} {binding.description}")
    return lines


def keymap() -> str:
    """The whole keymap as text: global, area, then each screen's own keys."""
    from caracal.flow.app import FlowApp
    from caracal.flow.widgets.paged_table import PagedTable

    sections = [
        ("Everywhere", FlowApp.BINDINGS),
        ("In every area", AreaScreen.BINDINGS),
        ("In tables", PagedTable.BINDINGS),
    ]
    for area in AREAS:
        try:
            screen = importlib.import_module(f"caracal.flow.screens.{area.key}").SCREEN
        except (ImportError, AttributeError):
            continue
        own = [b for b in screen.BINDINGS if b not in AreaScreen.BINDINGS]
        if own:
            sections.append((area.title, own))
    out = []
    for title, bindings in sections:
        out.append(f"[b]{title}[/b]")
        out += _describe(list(bindings))
        out.append("")
    return "\n".join(out)


class HelpScreen(AreaScreen):
    AREA = "help"

    def compose_area(self) -> ComposeResult:
        yield Static(keymap(), id="keymap")


SCREEN = HelpScreen
