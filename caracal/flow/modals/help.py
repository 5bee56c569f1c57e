"""`?`: every key, the current area's first, in an overlay that scrolls and filters."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from caracal.flow.keymap import sections


def render_keymap(current: str | None, needle: str = "") -> str:
    out: list[str] = []
    for title, keys in sections(current):
        shown = [k for k in keys if k.matches(needle) or needle.lower() in title.lower()]
        if not shown:
            continue
        out.append(f"[b]{escape(title)}[/b]")
        out += [f"  {escape(k.shown):<24} {escape(k.description)}" for k in shown]
        out.append("")
    return "\n".join(out).rstrip() or f"No key matches {escape(needle)!r}."


class HelpModal(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "back", "Close", id="help-close"),
        Binding("question_mark", "close", "Close", id="help-close-q"),
        Binding("q", "app.quit_flow", "Quit", show=False, id="help-quit"),
        Binding("slash", "filter", "Filter", id="help-filter"),
        Binding("j", "scroll(1)", "Down", show=False, id="help-down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="help-up"),
    ]
    DEFAULT_CSS = """
    HelpModal { align: center middle; }
    HelpModal > Vertical { width: 90%; max-width: 100; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    HelpModal #help-title { text-style: bold; padding: 1 0 0 0; }
    HelpModal #help-hint { color: $text-muted; }
    HelpModal #help-body { height: 1fr; }
    """

    def __init__(self, area: str | None) -> None:
        super().__init__()
        self.area = area

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Keys", id="help-title")
            yield Static(
                "↑/↓ j/k pgup/pgdn scroll · / filter · esc close", id="help-hint", markup=False
            )
            yield Input(placeholder="/ filter keys and what they do", id="help-filter")
            with VerticalScroll(id="help-body"):
                yield Static(render_keymap(self.area), id="keymap")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#keymap", Static).update(render_keymap(self.area, event.value))
        self.query_one("#help-body", VerticalScroll).scroll_home(animate=False)

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.query_one("#help-body").focus()

    def action_filter(self) -> None:
        self.query_one("#help-filter", Input).focus()

    def action_scroll(self, delta: int) -> None:
        body = self.query_one("#help-body", VerticalScroll)
        body.scroll_to(y=body.scroll_y + delta, animate=False)

    def action_back(self) -> None:
        """esc in the filter clears it and goes back to the list; otherwise it closes."""
        field = self.query_one("#help-filter", Input)
        if field.has_focus:
            field.value = ""
            self.query_one("#help-body").focus()
            return
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
