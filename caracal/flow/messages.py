"""Messages Flow's screens exchange, named for what happened."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class WorkspaceOpened(Message):
    """A workspace was opened (at start, after onboarding, or after a switch)."""

    name: str


@dataclass
class DataChanged(Message):
    """Something in the workspace changed; `area` names what (or "*")."""

    area: str = "*"
