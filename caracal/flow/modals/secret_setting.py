"""Set, replace or clear a secret setting. The input is masked, the current value is never
read into the dialog (only whether one is set), and the facade seals what is typed."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Static

from caracal.flow.modals.form import FormModal


class SecretSettingModal(FormModal[tuple[str, bool]]):
    """Closes with (key, whether the setting now holds a value)."""

    TITLE = "Set a secret setting"
    DEFAULT_CSS = """
    SecretSettingModal > Vertical { height: auto; max-height: 90%; }
    SecretSettingModal VerticalScroll { height: auto; }
    SecretSettingModal #setting-key { text-style: bold; margin-top: 1; }
    """

    def __init__(self, key: str, is_set: bool) -> None:
        super().__init__()
        self.key = key
        self.is_set = is_set

    def compose_fields(self) -> ComposeResult:
        yield Static(self.key, id="setting-key", markup=False)
        yield Static(
            f"Currently {'set' if self.is_set else 'not set'}. Flow never shows a secret; "
            "what you type is masked and stored sealed in config.yaml.",
            classes="hint",
            markup=False,
        )
        yield self.field("New value" if self.is_set else "Value")
        yield Input(password=True, id="secret-value")
        if self.is_set:
            yield Checkbox("Clear it (leave the setting not set)", id="secret-clear")
        yield Static("It takes effect the next time the workspace opens.", classes="hint")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#secret-value", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.prevent_default()  # Enter in the value saves
        self.action_submit()

    def prepare(self) -> Callable[[], tuple[str, bool]]:
        clear = self.is_set and self.query_one("#secret-clear", Checkbox).value
        text = self.query_one("#secret-value", Input).value
        if clear and text:
            raise ValueError("Either type a new value or tick Clear, not both.")
        if not clear and not text.strip():
            raise ValueError(
                "Type the new value"
                + (", or tick Clear to remove it." if self.is_set else ", or press esc.")
            )
        settings, key = self.flow.context.caracal.settings, self.key
        value = None if clear else text.strip()
        return lambda: (key, settings.set_secret(key, value))
