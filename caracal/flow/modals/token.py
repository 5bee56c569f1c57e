"""A mandate's token, to read or copy."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, TextArea


class TokenModal(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="token-close"),
        Binding("c", "copy", "Copy", id="token-copy"),
        Binding("q", "app.quit_flow", "Quit", show=False, id="token-quit"),
    ]
    DEFAULT_CSS = """
    TokenModal { align: center middle; }
    TokenModal > Vertical { width: 90%; height: auto; max-height: 80%; border: thick $primary; background: $surface; padding: 1 2; }
    TokenModal TextArea { height: 10; }
    TokenModal Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    TokenModal Button { margin-left: 2; }
    """

    def __init__(self, mandate_id: str, token: str) -> None:
        super().__init__()
        self.mandate_id = mandate_id
        self.token = token

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                f"Token of {self.mandate_id} (a bearer credential: handle it like a password)"
            )
            yield TextArea(self.token, read_only=True, soft_wrap=True, id="token")
            with Horizontal():
                yield Button("Copy to clipboard", id="copy", variant="primary")
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.token)
        self.app.notify("Token copied to the clipboard.")

    def action_close(self) -> None:
        self.dismiss(None)
