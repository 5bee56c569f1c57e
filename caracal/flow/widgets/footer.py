"""The footer: the keys that fit whole, then `? more` when some did not (help lists them all).

Textual's footer cuts the last key in half on a narrow terminal (`d Dele▏`) and repeats the
palette key at its right; this one drops whole keys from the end instead."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

MORE_WIDTH = len(" ? more ") + 1


def key_width(key: FooterKey) -> int:
    # " key " then "description " (Textual's paddings), and a column of gutter.
    return len(key.key_display) + len(key.description) + 4


class FittingFooter(Footer):
    def __init__(self) -> None:
        super().__init__(show_command_palette=False)
        self._shown_width = 0

    def compose(self) -> ComposeResult:
        items = list(super().compose())
        width = self.size.width or self.app.size.width
        needed = sum(key_width(i) if isinstance(i, FooterKey) else 12 for i in items)
        self._shown_width = width
        if needed <= width:
            yield from items
            return
        kept, used = [], 0
        for item in items:
            size = key_width(item) if isinstance(item, FooterKey) else 12
            if used + size > width - MORE_WIDTH:
                break
            kept.append(item)
            used += size
        self.styles.grid_size_columns = len(kept) + 1
        yield from kept
        yield FooterKey("question_mark", "?", "more", "app.help", classes="-more")

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._shown_width:
            self.call_after_refresh(self.recompose)
