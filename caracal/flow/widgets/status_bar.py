"""The top line: which workspace, which store, and the runtime's health."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { dock: top; height: 1; background: $primary-background; color: $text; padding: 0 1; }
    """

    workspace: reactive[str] = reactive("—")
    store: reactive[str] = reactive("—")
    runtime: reactive[str] = reactive("embedded")
    area: reactive[str] = reactive("")

    def render(self) -> str:
        area = f" › {self.area}" if self.area else ""
        return (
            f"[b]Caracal Flow[/b]{area}   workspace [b]{self.workspace}[/b]   "
            f"store {self.store}   runtime {self.runtime}"
        )
