"""A mandate's token, to read, send to the terminal's clipboard, or write to a private file.

Flow cannot know whether the terminal honoured the clipboard request (OSC 52: tmux drops it
unless `set-clipboard` is on), so it says how the token was sent, never that it was copied."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static, TextArea

from caracal.flow.tasks import run_in_background
from caracal.flow.text import display_path


class TokenModal(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="token-close"),
        Binding("c", "copy", "Send to clipboard", id="token-copy"),
        Binding("w", "write", "Write to a file", id="token-write"),
        Binding("q", "app.quit_flow", "Quit", show=False, id="token-quit"),
    ]
    DEFAULT_CSS = """
    TokenModal { align: center middle; }
    TokenModal > Vertical { width: 90%; height: auto; max-height: 80%; border: thick $primary; background: $surface; padding: 1 2; }
    TokenModal TextArea { height: 10; }
    TokenModal #copy-status { height: auto; color: $text-muted; margin-top: 1; }
    TokenModal Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    TokenModal Button { margin-left: 2; }
    TokenModal Label { width: 1fr; }
    TokenModal.-short > Vertical { max-height: 100%; padding: 0 1; }
    TokenModal.-short TextArea { height: 4; }
    TokenModal.-short #copy-status { margin-top: 0; }
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
            yield Static(
                "c sends it to the terminal's clipboard · w writes it to a file only you can "
                "read · esc closes",
                id="copy-status",
            )
            with Horizontal():
                yield Button("Send to clipboard", id="copy", variant="primary")
                yield Button("Write to a file", id="write")
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy":
            self.action_copy()
        elif event.button.id == "write":
            self.action_write()
        else:
            self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.token)
        self.query_one("#copy-status", Static).update(
            "Sent to the terminal's clipboard (OSC 52). Terminals may ignore it: tmux does "
            "unless `set -g set-clipboard on`. If pasting gives nothing, press w to write the "
            "token to a file."
        )

    def action_write(self) -> None:
        caracal = self.app.context.caracal  # type: ignore[attr-defined]
        mandate_id = self.mandate_id

        def written(path: object) -> None:
            self.query_one("#copy-status", Static).update(
                f"Written to {escape(display_path(path))} (mode 0600: only you can read it). "  # type: ignore[arg-type]
                "Delete it when the agent has it."
            )

        run_in_background(self, lambda: caracal.mandates.write_token(mandate_id), done=written)

    def action_close(self) -> None:
        self.dismiss(None)
