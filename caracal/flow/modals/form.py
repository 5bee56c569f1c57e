"""The shape every form dialog shares: fields, an inline error line, Save and Cancel.

Saving runs the facade call in a worker; the dialog closes with the result on success and
shows the one-line error in place on failure, keeping what was typed. Enter moves to the next
field and, on the last one, submits; esc on a form with edits asks before discarding them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    Select,
    SelectionList,
    Static,
    Switch,
    TextArea,
)

from caracal.flow.tasks import run_in_background
from caracal.flow.widgets.footer import FittingFooter

if TYPE_CHECKING:
    from caracal.flow.app import FlowApp

T = TypeVar("T")


class FormModal(ModalScreen[T | None], Generic[T]):
    TITLE = "Form"
    SUBMIT = "Save"
    # Start in the first field, not on the scrolling container around the fields.
    AUTO_FOCUS = "Select, Input, SelectionList, Checkbox, Switch, TextArea, RadioSet"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="form-save"),
        Binding("escape", "cancel", "Cancel", id="form-cancel"),
        Binding("tab", "next_field", "Next field", id="form-next"),
        Binding("shift+tab", "previous_field", "Previous field", show=False, id="form-previous"),
        # A modal sees only the app's priority keys: q quits (asking first) as everywhere else.
        Binding("q", "app.quit_flow", "Quit", show=False, id="form-quit"),
    ]
    KEYS_HINT = "ctrl+s submit · esc cancel · tab next field · enter on the last field submits"
    FIELDS = "#form-fields Input, #form-fields Select, #form-fields SelectionList, " + (
        "#form-fields Checkbox, #form-fields Switch, #form-fields TextArea"
    )
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
    FormModal #form-keys { color: $text-muted; height: 1; }
    FormModal SelectionList { height: auto; max-height: 10; }
    /* Below 32 lines (80×24, say) the dialog takes the whole screen and the fields sit closer:
       the fields scroll, the buttons and keys stay in view. */
    FormModal.-short > Vertical { height: 1fr; width: 100%; max-width: 110; border: round $primary; }
    FormModal.-short #form-title { padding: 0; }
    FormModal.-short Label.field { margin-top: 0; }
    FormModal.-short SelectionList { max-height: 6; }
    FormModal.-short #form-buttons { padding-bottom: 0; }
    FormModal.-short #form-keys { height: auto; }
    """

    _saving = False
    _pristine: tuple[str, ...] | None = None
    _left_select: tuple[Select[Any], float] | None = None  # and when it was left
    _editing: Widget | None = None  # the field last focused (a dropdown, not its list)

    # ---- focus ----------------------------------------------------------------------------
    def action_next_field(self) -> None:
        """tab: the field after the one being edited, even right after a dropdown's list
        closed. Then Textual briefly has the focus on the hidden list (or on nothing) and
        takes it back to the dropdown a moment later; a tab typed in that moment moves on
        from the dropdown, and the keys typed after it belong to the next field."""
        focused = self.focused
        anchor: Widget | None = focused
        if focused is None or isinstance(focused.parent, Select):
            anchor = self._editing
        if isinstance(anchor, Select):
            self._left_select = (anchor, time.monotonic())
        chain = self.focus_chain
        if anchor in chain:
            self.set_focus(chain[(chain.index(anchor) + 1) % len(chain)])
        else:
            self.focus_next()

    def action_previous_field(self) -> None:
        """shift+tab: the field before the one being edited. Asked for by the operator, so
        never taken for a dropdown's late take-back, even right after a tab left it."""
        self._left_select = None
        focused = self.focused
        anchor = self._editing if focused is None or isinstance(focused.parent, Select) else focused
        chain = self.focus_chain
        if anchor in chain:
            self.set_focus(chain[(chain.index(anchor) - 1) % len(chain)])
        else:
            self.focus_previous()

    def on_descendant_focus(self, event: Any) -> None:
        widget = event.widget
        self._editing = widget.parent if isinstance(widget.parent, Select) else widget

    def set_focus(
        self, widget: Widget | None, scroll_visible: bool = True, from_app_focus: bool = False
    ) -> None:
        left = self._left_select
        if left is not None and widget is left[0]:
            self._left_select = None
            late = time.monotonic() - left[1] < 1.0
            if late and self.focused is not None and self.focused is not widget:
                return  # the late take-back of a dropdown the operator has tabbed away from
        super().set_focus(widget, scroll_visible, from_app_focus)

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
            yield from self.compose_outcome()
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Cancel", id="form-cancel-button")
                yield Button(self.SUBMIT, id="form-submit", variant="primary")
            yield Static(self.KEYS_HINT, id="form-keys", markup=False)
        yield FittingFooter()

    def compose_fields(self) -> ComposeResult:
        yield from ()

    def compose_outcome(self) -> ComposeResult:
        """Lines under the fields, outside their scrolling: what a submit answered stays in
        view however far the fields scroll (a dialog that stays open after submitting)."""
        yield from ()

    @staticmethod
    def field(label: str) -> Label:
        return Label(label, classes="field")

    def value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    # ---- edits ----------------------------------------------------------------------------
    def on_mount(self) -> None:
        # The first field has the keys from the first frame on: a key typed as soon as the
        # dialog shows goes to it, never to nothing.
        if self.focused is None and isinstance(self.AUTO_FOCUS, str):
            for widget in self.query(self.AUTO_FOCUS):
                if widget.focusable:
                    self.set_focus(widget)
                    break
        self.call_after_refresh(self.mark_pristine)
        # After the focus has scrolled its field into view (itself after a refresh).
        self.call_after_refresh(lambda: self.call_after_refresh(self.show_top))

    def show_top(self) -> None:
        """On a short terminal, open at the top of the fields (the first label too): focusing
        the first field scrolls it to the top and hides its label."""
        if not self.is_mounted or not self.has_class("-short"):
            return
        fields = [w for w in self.query(self.FIELDS) if w.focusable]
        if not fields or self.focused is not fields[0]:
            return  # the operator has moved on already
        self.query_one("#form-fields", VerticalScroll).scroll_home(animate=False, immediate=True)
        fields[0].scroll_visible(animate=False, immediate=True)

    def _field_values(self) -> tuple[str, ...]:
        values = []
        for widget in self.query(self.FIELDS):
            if isinstance(widget, SelectionList):
                values.append(repr(sorted(map(str, widget.selected))))
            elif isinstance(widget, TextArea):
                values.append(widget.text)
            elif isinstance(widget, Input | Select | Checkbox | Switch):
                values.append(repr(widget.value))
        return tuple(values)

    def mark_pristine(self) -> None:
        """What the form holds before the operator types: edits are measured against it."""
        if self.is_mounted:
            self._pristine = self._field_values()

    @property
    def dirty(self) -> bool:
        return self._pristine is not None and self._field_values() != self._pristine

    def on_input_changed(self, _: Input.Changed) -> None:
        """Subclasses extend this (and call it) to check fields as they are typed."""

    def _last_field(self) -> Widget | None:
        fields = [w for w in self.query(self.FIELDS) if w.focusable]
        return fields[-1] if fields else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter walks the fields; on the last one it submits, never landing on Cancel.
        if event.input is self._last_field():
            self.action_submit()
        else:
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
        if not (self.dirty or self.flow.unsaved):
            self._discard()
            return
        from caracal.flow.modals.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if yes:
                self._discard()

        self.app.push_screen(
            ConfirmModal(
                "Discard the changes to this form?",
                "esc keeps the form open with what you typed.",
                confirm_label="Discard",
            ),
            answered,
        )

    def _discard(self) -> None:
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
        def filled(result: Any) -> None:
            done(result)
            # What the data filled in is not an edit.
            self.call_after_refresh(self.mark_pristine)

        run_in_background(
            self, work, done=filled, failed=self.show_error, description=f"{self.TITLE} data"
        )
