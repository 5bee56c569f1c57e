"""The sidebar: one line per area, with its quick key."""

from __future__ import annotations

from textual.widgets import OptionList
from textual.widgets.option_list import Option

from caracal.flow.areas import AREAS


class Nav(OptionList):
    DEFAULT_CSS = """
    Nav { width: 18; height: 1fr; border: none; border-right: solid $primary 40%; padding: 0; }
    Nav:focus { border: none; border-right: solid $accent; }
    """

    def __init__(self, current: str) -> None:
        super().__init__(
            *(Option(f"{a.digit or ' '} {a.title}", id=a.key) for a in AREAS),
            id="nav",
        )
        self.current = current

    def on_mount(self) -> None:
        for index, area in enumerate(AREAS):
            if area.key == self.current:
                self.highlighted = index
