"""A table that draws only the lines on screen, fetching pages of rows from the store.

Textual's DataTable keeps every row in memory (100,000 rows take seconds and hundreds of MB to
settle); this widget keeps a few pages, asks its source for the page a visible line needs, and
knows the total only to size the scrollbar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import Worker

from caracal.flow.tasks import run_in_background

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # 0: take the remaining width
    render: Callable[[Row], str] | None = None
    style: Callable[[Row], str] | None = None

    def text(self, row: Row) -> str:
        value = self.render(row) if self.render else row.get(self.key)
        return "" if value is None else str(value)


class PageSource(Protocol):
    """Runs in a worker thread."""

    def fetch(self, offset: int, limit: int) -> list[Row]: ...

    def count(self) -> int: ...


class PagedTable(ScrollView, can_focus=True):
    PAGE = 100
    KEEP_PAGES = 12
    FLEX_MIN = 24

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="row-up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="row-down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="page-down"),
        Binding("home,g", "jump(0)", "First", show=False, id="first-row"),
        Binding("end,G", "jump(-1)", "Last", show=False, id="last-row"),
        Binding("left,h", "scroll_columns(-1)", "Left", show=False, id="col-left"),
        Binding("right,l", "scroll_columns(1)", "Right", show=False, id="col-right"),
        Binding("enter", "select", "Open", id="open-row"),
    ]
    DEFAULT_CSS = """
    PagedTable { height: 1fr; scrollbar-size-horizontal: 1; }
    PagedTable:focus { background-tint: $foreground 3%; }
    """

    cursor: reactive[int] = reactive(0)

    @dataclass
    class Selected(Message):
        table: PagedTable
        row: Row

    @dataclass
    class Highlighted(Message):
        table: PagedTable
        row: Row | None

    @dataclass
    class Loaded(Message):
        table: PagedTable
        total: int
        counting: bool = False  # total is the rows so far; the count follows (count_later)

    COUNT_DELAY = 0.3  # seconds a source must stay unchanged before it is counted

    def __init__(
        self,
        columns: list[Column],
        *,
        empty: str = "Nothing here yet.",
        count_later: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Count a full first page only once the source has stayed the same for a moment (a
        # count reads every matching row): the page is painted without waiting for it.
        self.count_later = count_later
        self.counting = False
        self._fetching = False  # a first page is being read: newer sources wait for it
        self._again = False
        self._fetch_worker: Worker[None] | None = None  # a cancelled one never calls back
        self.columns = columns
        self.empty = empty
        self.source: PageSource | None = None
        self.total = 0
        self.loaded = False
        self.loaded_at = 0.0  # time.monotonic() of the last first-page load (benchmarks read it)
        self.painted_at = 0.0  # ... and of the first frame drawing that page's lines
        self._pages: dict[int, list[Row]] = {}
        self._pending: set[int] = set()
        self._generation = 0

    # ---- data ----------------------------------------------------------------------------
    def set_source(self, source: PageSource) -> None:
        self.source = source
        self.reload()

    def reload(self) -> None:
        """Fetch the first page (shown at once), then the total; keeps the cursor if it can.
        While a first page is being read, newer reloads wait for it and only the latest runs
        (typing fast does not queue a read per keystroke)."""
        if self.source is None:
            return
        self._generation += 1
        worker = self._fetch_worker
        if self._fetching and worker is not None and not worker.is_finished:
            self._again = True
            return
        self._fetching, self._again = True, False
        generation, source, later = self._generation, self.source, self.count_later
        self._pending = {0}

        def first_page() -> tuple[list[Row], int | None]:
            rows = source.fetch(0, self.PAGE)
            if len(rows) < self.PAGE:
                return rows, len(rows)
            return rows, None if later else source.count()

        def failed(message: str) -> None:
            self._fetched()
            self.app.show_problem(message)  # type: ignore[attr-defined]

        self._fetch_worker = run_in_background(
            self,
            first_page,
            done=lambda result: self._fetched(generation, result[0], result[1]),
            failed=failed,
            group=f"table-{id(self)}",
            description="table first page",
        )

    def _fetched(
        self, generation: int = -1, rows: list[Row] | None = None, total: int | None = None
    ) -> None:
        self._fetching = False
        if self._again:
            self._again = False
            self.reload()
        elif rows is not None:
            self._loaded(generation, rows, total)

    def _loaded(self, generation: int, rows: list[Row], total: int | None) -> None:
        if generation != self._generation:
            return
        self._pages = {0: rows}
        self._pending.clear()
        self.counting = total is None
        self.total = len(rows) if total is None else total
        self.loaded = True
        self.loaded_at = time.monotonic()
        self.cursor = min(self.cursor, max(self.total - 1, 0))
        self._resize()
        self.refresh()
        self.post_message(self.Loaded(self, self.total, self.counting))
        self.post_message(self.Highlighted(self, self.current_row))
        if self.counting:
            self.set_timer(self.COUNT_DELAY, lambda: self._count(generation))

    def _count(self, generation: int) -> None:
        if generation != self._generation or self.source is None:
            return  # the source changed since: its own count follows
        source = self.source

        def counted(total: int) -> None:
            if generation != self._generation:
                return
            self.counting = False
            self.total = max(total, 0)
            self._resize()
            self.refresh()
            self.post_message(self.Loaded(self, self.total))

        run_in_background(
            self,
            source.count,
            done=counted,
            group=f"table-count-{id(self)}",
            description="table count",
        )

    def _want(self, page: int) -> None:
        if page in self._pages or page in self._pending or self.source is None:
            return
        self._pending.add(page)
        generation, source = self._generation, self.source

        run_in_background(
            self,
            lambda: source.fetch(page * self.PAGE, self.PAGE),
            done=lambda rows: self._page_loaded(generation, page, rows),
            group=f"table-page-{id(self)}-{page}",
            description="table page",
        )

    def _page_loaded(self, generation: int, page: int, rows: list[Row]) -> None:
        if generation != self._generation:
            return
        self._pending.discard(page)
        self._pages[page] = rows
        if len(self._pages) > self.KEEP_PAGES:
            current = self.cursor // self.PAGE
            for far in sorted(self._pages, key=lambda p: -abs(p - current))[
                : len(self._pages) - self.KEEP_PAGES
            ]:
                del self._pages[far]
        self.refresh()

    def row_at(self, index: int) -> Row | None:
        page = self._pages.get(index // self.PAGE)
        if page is None:
            self._want(index // self.PAGE)
            return None
        offset = index % self.PAGE
        return page[offset] if offset < len(page) else None

    @property
    def current_row(self) -> Row | None:
        return self.row_at(self.cursor) if self.total else None

    # ---- drawing -------------------------------------------------------------------------
    # The first column stays put; the others scroll sideways (h/l) when they do not fit.
    def _resize(self) -> None:
        self.virtual_size = Size(sum(w + 1 for w in self._widths()), self.total + 1)

    def on_resize(self) -> None:
        if self.loaded:
            self._resize()

    def _widths(self) -> list[int]:
        fixed = sum(c.width + 1 for c in self.columns if c.width)
        flexible = [c for c in self.columns if not c.width]
        # A column without a width takes what is left, and at least FLEX_MIN (scroll to see it).
        spare = max(self.size.width - fixed, (self.FLEX_MIN + 1) * len(flexible))
        return [c.width or max(spare // max(len(flexible), 1) - 1, 8) for c in self.columns]

    def _cells(self, values: list[tuple[str, str]], base: Style) -> Strip:
        segments = []
        for (text, style), width in zip(values, self._widths(), strict=True):
            cell = text[:width].ljust(width) + " "
            segments.append(Segment(cell, base + Style.parse(style) if style else base))
        pinned = Strip(segments[:1])
        rest = Strip(segments[1:])
        left = int(self.scroll_x)
        shown = max(self.size.width - pinned.cell_length, 0)
        return Strip.join([pinned, rest.crop(left, left + shown)]).crop(0, self.size.width)

    def render_line(self, y: int) -> Strip:
        header_style = Style(bold=True, reverse=False, underline=True)
        if y == 0:
            return self._cells([(c.title, "") for c in self.columns], header_style)
        index = int(self.scroll_y) + y - 1
        if not self.loaded:
            return Strip([Segment("Loading…" if y == 1 else "", Style(dim=True))])
        if self.painted_at < self.loaded_at:
            self.painted_at = time.monotonic()
        if self.total == 0:
            return Strip([Segment(self.empty if y == 1 else "", Style(dim=True))])
        if index >= self.total:
            return Strip.blank(self.size.width)
        row = self.row_at(index)
        selected = index == self.cursor
        base = (
            Style(reverse=True)
            if selected and self.has_focus
            else Style(bold=True)
            if selected
            else Style()
        )
        if row is None:
            return Strip([Segment("…", base + Style(dim=True))])
        return self._cells(
            [(c.text(row), c.style(row) if c.style else "") for c in self.columns], base
        )

    # ---- moving --------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        visible = max(self.size.height - 1, 1)
        if new < self.scroll_y:
            self.scroll_to(y=new, animate=False)
        elif new >= self.scroll_y + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()
        self.post_message(self.Highlighted(self, self.current_row))

    def action_cursor(self, delta: int) -> None:
        if self.total:
            self.cursor = max(0, min(self.total - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(self.size.height - 2, 1))

    def action_jump(self, where: int) -> None:
        if self.total:
            self.cursor = 0 if where == 0 else self.total - 1

    def action_scroll_columns(self, direction: int) -> None:
        """Scroll to the next (or previous) column's start: whole columns come into view."""
        starts, at = [], 0
        for width in self._widths()[1:]:
            starts.append(at)
            at += width + 1
        limit = max(self.virtual_size.width - self.size.width, 0)
        left = int(self.scroll_x)
        if direction > 0:
            target = next((s for s in starts if s > left), limit)
        else:
            target = next((s for s in reversed(starts) if s < left), 0)
        self.scroll_to(x=min(max(target, 0), limit), animate=False)
        self.refresh()

    def action_select(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.Selected(self, row))

    def on_click(self, event: Click) -> None:
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < self.total:
            self.cursor = index
            if event.chain >= 2:
                self.action_select()
