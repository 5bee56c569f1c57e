"""A failure, said in one readable sentence, never a traceback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ProblemModal(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,enter", "dismiss_problem", "Close", id="problem-close"),
        Binding("q", "app.quit_flow", "Quit", show=False, id="problem-quit"),
    ]
    DEFAULT_CSS = """
    ProblemModal { align: center middle; }
    ProblemModal > Vertical { width: 76; max-width: 100%; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    ProblemModal #title { text-style: bold; color: $error; margin-bottom: 1; }
    ProblemModal Button { margin-top: 1; }
    """

    def __init__(self, message: str, title: str = "That did not work") -> None:
        super().__init__()
        self.message = message
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Static(self.message, id="message", markup=False)
            yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, _: Button.Pressed) -> None:
        self.dismiss(None)

    def action_dismiss_problem(self) -> None:
        self.dismiss(None)
