"""The dashboard's elements: each one can take the focus, and `enter` on it (the dashboard's
binding calls `action_open`) asks for the list behind it (a `Drilled` message naming the area
and the filter to show)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

DRIFT = "drift"  # not an area: the list of changes since the last apply


def middle(text: str, width: int) -> str:
    """`a-very-long-principal-name` -> `a-very-…al-name`: both ends stay readable."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = width // 2
    tail = width - 1 - head
    return f"{text[:head]}…{text[len(text) - tail :]}" if tail else f"{text[:head]}…"


@dataclass
class Drilled(Message):
    """`enter` on a dashboard element: show `area` filtered by `search` (the area's `/` box)
    and `choices` (its toolbar's lists, by id: `{"status-filter": "active"}`)."""

    area: str
    search: str = ""
    choices: dict[str, str] = field(default_factory=dict)


def target(option_id: str | None) -> Drilled | None:
    """Option ids are `area:search`."""
    if not option_id or ":" not in option_id:
        return None
    area, search = option_id.split(":", 1)
    return Drilled(area, search)


class Figure(Horizontal, can_focus=True):
    """A count and what it counts (`4 principals`); the count fills in when the data loads.
    `enter` opens the list it counts."""

    DEFAULT_CSS = """
    Figure { width: auto; height: 1; margin-right: 2; }
    Figure:focus { background: $accent 30%; }
    Figure .value { width: auto; text-style: bold; margin-right: 1; }
    Figure .label { width: auto; color: $text-muted; }
    """

    def __init__(self, label: str, figure_id: str, opens: Drilled) -> None:
        super().__init__(id=figure_id)
        self.label_text = label
        self.opens = opens

    def action_open(self) -> None:
        o = self.opens
        self.post_message(Drilled(o.area, o.search, dict(o.choices)))

    def compose(self) -> ComposeResult:
        yield Label("…", classes="value")
        yield Label(self.label_text, classes="label")

    def set(self, value: int | str, label: str | None = None) -> None:
        self.query_one(".value", Label).update(f"{value:,}" if isinstance(value, int) else value)
        if label is not None:
            self.query_one(".label", Label).update(label)


class Link(Static, can_focus=True):
    """One focusable line; `enter` opens what it summarises."""

    DEFAULT_CSS = """
    Link { height: 1; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    Link:focus { background: $accent 30%; }
    """

    def __init__(self, text: str, area: str, search: str = "", *, id: str | None = None) -> None:
        super().__init__(text, id=id)
        self.area, self.search = area, search

    def action_open(self) -> None:
        self.post_message(Drilled(self.area, self.search))


BARS = "▁▂▃▄▅▆▇█"


def bars(values: tuple[int, ...], peak: int) -> str:
    """One character per minute, scaled to `peak`; a minute with no decision stays blank (a
    sparkline's lowest bar would look like activity)."""
    if peak <= 0:
        return " " * len(values)
    top = len(BARS) - 1
    return "".join(BARS[min(top, (v * top + peak - 1) // peak)] if v > 0 else " " for v in values)


class DecisionGraph(Static, can_focus=True):
    """Decisions per minute over the last hour, one column per minute, oldest on the left:
    allowed above, denied below, on the same scale. One widget, four lines."""

    DEFAULT_CSS = """
    DecisionGraph { height: 4; width: 1fr; }
    DecisionGraph:focus { background: $accent 20%; }
    """
    AXIS = f"{'':9}▕{'60 min ago':<57}now"

    def __init__(self) -> None:
        super().__init__(self._graph("Decisions per minute, last hour: …", "", ""))

    def _graph(self, title: str | Text, allowed: str, denied: str) -> Text:
        return Text.assemble(
            title,
            ("\nallowed  ", "dim"),
            ("▕", "dim"),
            (allowed, "green"),
            ("\ndenied   ", "dim"),
            ("▕", "dim"),
            (denied, "red"),
            ("\n" + self.AXIS, "dim"),
        )

    def show(self, allowed: tuple[int, ...], denied: tuple[int, ...], aggregated: int) -> None:
        total_allowed, total_denied = sum(allowed), sum(denied) + aggregated
        peak = max((*allowed, *denied), default=0)
        title = Text.assemble(
            "Decisions per minute, last hour: ",
            (f"{total_allowed:,} allowed", "green"),
            " · ",
            (f"{total_denied:,} denied", "red"),
            f" · peak {peak:,}/min",
        )
        self.update(self._graph(title, bars(allowed, peak), bars(denied, peak)))

    def action_open(self) -> None:
        self.post_message(Drilled("ledger", "validation"))


class PulseList(OptionList):
    """A short list of figures; each option opens its filtered list (ids: `area:search`)."""

    DEFAULT_CSS = """
    PulseList { border: none; height: 6; padding: 0; background: transparent; display: none; }
    PulseList.-loaded { display: block; }
    PulseList:focus { border: none; }
    """

    def show(self, options: list[tuple[str, str | None]], empty: str) -> None:
        highlighted = self.highlighted
        self.add_class("-loaded")  # hidden until then: the first frame does not draw it empty
        self.clear_options()
        if not options:
            self.add_option(Option(empty, disabled=True))
            return
        self.add_options([Option(text, id=key) for text, key in options])
        # Something is always highlighted, so enter on a focused list opens a row.
        self.highlighted = (
            highlighted if highlighted is not None and highlighted < len(options) else 0
        )

    @property
    def text_width(self) -> int:
        """Characters a row can show without wrapping (before the first layout: a guess)."""
        return max(self.size.width - 1, 20) if self.size.width else 24


class PulseColumn(Vertical):
    DEFAULT_CSS = """
    PulseColumn { width: 1fr; height: auto; margin-right: 1; }
    PulseColumn .column-title { text-style: bold; color: $text-muted; }
    """

    def __init__(self, title: str, list_id: str) -> None:
        super().__init__()
        self.title, self.list_id = title, list_id

    def compose(self) -> ComposeResult:
        yield Label(self.title, classes="column-title")
        yield PulseList(id=self.list_id)
