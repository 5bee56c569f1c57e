"""Shown for the moment it takes to open the workspace."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Label, LoadingIndicator


class LoadingScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Label("Caracal Flow — opening the workspace…")
            yield LoadingIndicator()


SCREEN = LoadingScreen
