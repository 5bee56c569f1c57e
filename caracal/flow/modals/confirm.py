"""Ask before doing something that cannot be undone."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmModal(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape,n", "answer(False)", "No", id="confirm-no"),
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
    ]
    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical { width: 72; height: auto; max-height: 80%; border: thick $warning; padding: 1 2; background: $surface; }
    ConfirmModal #details { margin: 1 0; color: $text-muted; max-height: 16; overflow-y: auto; }
    ConfirmModal Horizontal { height: auto; align-horizontal: right; }
    ConfirmModal Button { margin-left: 2; }
    ConfirmModal.-short > Vertical { max-height: 100%; padding: 0 1; }
    """

    def __init__(self, question: str, details: str = "", *, confirm_label: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.details = details
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, id="question")
            if self.details:
                yield Static(self.details, id="details", markup=False)
            with Horizontal():
                yield Button("No", id="no")
                yield Button(self.confirm_label, id="yes", variant="error")

    def on_mount(self) -> None:
        if not getattr(self.app, "confirm_destructive", True):
            # The operator chose (in Settings) not to be asked.
            self.call_after_refresh(self.dismiss, True)
            return
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
