"""The shape every form dialog shares: fields, an inline error line, Save and Cancel.

Saving runs the facade call in a worker; the dialog closes with the result on success and
shows the one-line error in place on failure, keeping what was typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from caracal.flow.tasks import run_in_background

if TYPE_CHECKING:
    from caracal.flow.app import FlowApp

T = TypeVar("T")


class FormModal(ModalScreen[T | None], Generic[T]):
    TITLE = "Form"
    SUBMIT = "Save"
    # Start in the first field, not on the scrolling container around the fields.
    AUTO_FOCUS = "Select, Input, SelectionList, Checkbox, Switch, TextArea, RadioSet"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="form-cancel"),
        Binding("ctrl+s", "submit", "Save", id="form-save"),
    ]
    DEFAULT_CSS = """
    FormModal { align: center middle; }
    FormModal > Vertical { width: 90%; max-width: 110; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    FormModal #form-title { text-style: bold; padding: 1 0 0 0; }
    FormModal VerticalScroll { height: 1fr; }
    FormModal Label.field { margin-top: 1; color: $text-muted; }
    FormModal .hint { color: $text-muted; }
    FormModal #form-error { color: $error; height: auto; min-height: 1; }
    FormModal #form-buttons { height: auto; align-horizontal: right; padding-bottom: 1; }
    FormModal #form-buttons Button { margin-left: 2; }
    FormModal SelectionList { height: auto; max-height: 10; }
    """

    _saving = False

    @property
    def flow(self) -> FlowApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.TITLE, id="form-title")
            fields = VerticalScroll(id="form-fields")
            fields.can_focus = False
            with fields:
                yield from self.compose_fields()
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Cancel", id="form-cancel-button")
                yield Button(self.SUBMIT, id="form-submit", variant="primary")

    def compose_fields(self) -> ComposeResult:
        yield from ()

    @staticmethod
    def field(label: str) -> Label:
        return Label(label, classes="field")

    def value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def on_input_changed(self, _: Input.Changed) -> None:
        self.flow.unsaved = True

    def on_input_submitted(self, _: Input.Submitted) -> None:
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "form-submit":
            event.stop()
            self.action_submit()
        elif event.button.id == "form-cancel-button":
            event.stop()
            self.action_cancel()

    def show_error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(message)

    def action_cancel(self) -> None:
        self.flow.unsaved = False
        self.dismiss(None)

    def action_submit(self) -> None:
        try:
            work = self.prepare()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        if self._saving:
            return
        self.show_error("")
        # A flag, not a disabled button: disabling would move the focus away from the field.
        self._saving = True

        def done(result: T) -> None:
            self.flow.unsaved = False
            self.dismiss(result)

        def failed(message: str) -> None:
            self._saving = False
            self.show_error(message)

        run_in_background(self, work, done=done, failed=failed, description=self.TITLE)

    def prepare(self) -> Callable[[], T]:
        """Read the fields (raising ValueError with a message for bad input) and return the
        blocking call that does the work."""
        raise NotImplementedError

    def load(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        run_in_background(
            self, work, done=done, failed=self.show_error, description=f"{self.TITLE} data"
        )
