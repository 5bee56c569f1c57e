"""Logs: the end of the workspace log, filtered by level and text, refreshed while it shows.

Flow never writes log records to the terminal; they go to `<workspace>/logs/caracal.log` only,
and this screen reads that file back (in a worker, from its end; see `services.log_tail`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, RichLog, Select, Static

from caracal.flow.screens.base import AreaScreen
from caracal.flow.tasks import run_in_background
from caracal.flow.text import display_path

COMMANDS = [
    ("Show the next minimum level", "cycle_level"),
    ("Pause or resume auto-refresh", "follow"),
]
TAIL = 500  # records shown
REFRESH_SECONDS = 2.0
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
LEVEL_OPTIONS = [(f"{level} and above", level) for level in LEVELS]
STYLE = {
    "DEBUG": "dim",
    "INFO": "",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold red",
}

Query = tuple[str, str]  # (minimum level, text filter)


class LogsScreen(AreaScreen):
    AREA = "logs"
    BINDINGS = [
        Binding("L", "cycle_level", "Level", id="logs-level"),
        Binding("f", "follow", "Pause/resume", id="logs-follow"),
    ]
    DEFAULT_CSS = """
    LogsScreen #log-status { color: $text-muted; height: 1; }
    LogsScreen #log { height: 1fr; border-top: solid $primary 30%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.following = True
        self.shown: tuple[Any, Query] | None = None  # (file stamp, query) now on screen
        self.reading = False
        self.count = 0
        self.missing = False

    def compose_area(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Input(placeholder="/ text to find", id="filter")
            yield Select(LEVEL_OPTIONS, value="INFO", allow_blank=False, id="level-filter")
        yield Static("Reading the log…", id="log-status", markup=False)
        yield RichLog(id="log", wrap=False, markup=False, highlight=False, auto_scroll=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REFRESH_SECONDS, self._tick)
        self.query_one("#log", RichLog).focus()

    # ---- reading ---------------------------------------------------------------------------
    def query_now(self) -> Query:
        level = self.query_one("#level-filter", Select).value
        return (
            level if isinstance(level, str) else "INFO",
            self.query_one("#filter", Input).value.strip(),
        )

    def load(self) -> None:
        self._read(force=True)

    def action_reload(self) -> None:
        self.following = True
        self._read(force=True)

    def _tick(self) -> None:
        if self.following and not self.reading and self.app.screen is self:
            self._read(force=False)

    def _read(self, *, force: bool) -> None:
        """Read the tail in a worker; unless forced, skip it when neither the file nor the
        filters changed since what is on screen."""
        from caracal.services import log_tail

        if not self.context.has_workspace:
            return
        path = self.context.caracal.paths.log_file
        query = self.query_now()
        known = self.shown[0] if self.shown and self.shown[1] == query and not force else None

        def work() -> tuple[Any, Query, list[log_tail.LogLine]] | None:
            stamp = log_tail.stamp(path)
            if stamp == known:
                return None
            level, contains = query
            return stamp, query, log_tail.tail(path, lines=TAIL, min_level=level, contains=contains)

        self.reading = True
        run_in_background(
            self,
            work,
            done=self._show,
            failed=self._failed,
            group="logs",
            exclusive=True,
            description="read the workspace log",
        )

    def _failed(self, message: str) -> None:
        # Stop refreshing: a failure is itself logged, which would change the file again.
        self.reading = False
        self.following = False
        self.query_one("#log-status", Static).update(
            f"Could not read the log: {message} (paused; ctrl+r tries again)"
        )

    def _show(self, result: tuple[Any, Query, list[Any]] | None) -> None:
        self.reading = False
        if result is None:
            return
        stamp, query, records = result
        if query != self.query_now():  # the filters changed meanwhile; that read will follow
            return
        log = self.query_one("#log", RichLog)
        at_end = self.shown is None or self.shown[1] != query or log.is_vertical_scroll_end
        keep = log.scroll_y
        self.shown = (stamp, query)
        log.clear()
        content = render(records) if records else Text("Nothing to show.", style="dim")
        log.write(content, scroll_end=at_end)  # (deferred until the log has a size)
        if not at_end:
            log.scroll_to(y=keep, animate=False, immediate=False)
        self.count = len(records)
        self.missing = stamp[0][1] < 0 and stamp[1][1] < 0
        self._status()

    def _status(self) -> None:
        level, contains = self.query_now()
        path: Path = self.context.caracal.paths.log_file
        if self.missing:
            text = f"No log yet: {display_path(path)} is created when something is logged."
        else:
            found = f"{self.count} record(s) at {level} or above"
            if contains:
                found += f" containing {contains!r}"
            text = f"{found} · {display_path(path)}"
        refresh = (
            f"refreshing every {REFRESH_SECONDS:g} s" if self.following else "paused (f resumes)"
        )
        self.query_one("#log-status", Static).update(f"{text} · {refresh}")

    # ---- events and actions ----------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._read(force=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one("#log", RichLog).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "level-filter":
            self._read(force=True)

    def action_cycle_level(self) -> None:
        select = self.query_one("#level-filter", Select)
        current = select.value if select.value in LEVELS else "INFO"
        select.value = LEVELS[(LEVELS.index(str(current)) + 1) % len(LEVELS)]

    def action_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self._read(force=False)
        if self.shown is not None:
            self._status()
        self.app.notify("Refreshing the log." if self.following else "Paused refreshing.")


def render(records: list[Any]) -> Text:
    """The records as one text, each coloured by its level; tracebacks dimmed below."""
    out = Text(no_wrap=True, overflow="ignore")
    for index, record in enumerate(records):
        if index:
            out.append("\n")
        style = STYLE.get(record.level, "dim")
        if record.level:
            out.append(record.when, style="dim")
            out.append(" ")
            out.append(f"{record.level:<8}", style=f"bold {style}".strip())
            out.append(f"{record.logger}: ", style="cyan")
            out.append(record.message, style=style)
        for n, line in enumerate(record.detail):
            if n or record.level:
                out.append("\n")
            out.append(line, style=f"{style} dim".strip())
    return out


SCREEN = LogsScreen
