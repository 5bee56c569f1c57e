"""Change one (non-secret) config value: the facade validates it and writes `config.yaml`."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Static

from caracal.flow.modals.form import FormModal

KINDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def as_text(value: Any) -> str:
    """A value as `config set` reads it back (YAML scalars)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe(key: str) -> str:
    """What the key accepts, from the config model: kind, bounds and description."""
    from caracal.home.config_model import WorkspaceConfig

    model: Any = WorkspaceConfig
    *sections, name = key.split(".")
    try:
        for section in sections:
            model = model.model_fields[section].annotation
        info = model.model_fields[name]
    except (KeyError, AttributeError):
        return ""
    kind, optional = _kind(info.annotation)
    low = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in info.metadata if hasattr(m, "le")), None)
    if low is not None and high is not None:
        kind += f" from {low} to {high}"
    elif low is not None:
        kind += f", at least {low}"
    elif high is not None:
        kind += f", at most {high}"
    if optional:
        kind += ", or null for none"
    text = kind[:1].upper() + kind[1:] + "."
    return f"{text} {info.description}" if info.description else text


def _kind(annotation: Any) -> tuple[str, bool]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args), False
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        kind, _ = _kind(rest[0]) if len(rest) == 1 else ("a value", False)
        return kind, len(rest) < len(args)
    return KINDS.get(annotation, "a value"), False


class EditSettingModal(FormModal[tuple[str, Any]]):
    TITLE = "Change a setting"
    DEFAULT_CSS = """
    EditSettingModal > Vertical { height: auto; max-height: 90%; }
    EditSettingModal VerticalScroll { height: auto; }
    EditSettingModal #setting-key { text-style: bold; margin-top: 1; }
    """

    def __init__(self, key: str, current: Any) -> None:
        super().__init__()
        self.key = key
        self.current = current

    def compose_fields(self) -> ComposeResult:
        yield Static(self.key, id="setting-key", markup=False)
        hint = describe(self.key)
        if hint:
            yield Static(hint, classes="hint", markup=False)
        yield self.field("Value")
        yield Input(as_text(self.current), id="value")
        yield Static(
            "Saved to config.yaml; it takes effect the next time the workspace opens.",
            classes="hint",
        )

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.prevent_default()  # one field: Enter saves (not FormModal's "next field")
        self.action_submit()

    def prepare(self) -> Callable[[], tuple[str, Any]]:
        text = self.value("value")
        if not text:
            raise ValueError("Type a value (null clears an optional one).")
        if text == as_text(self.current):
            raise ValueError("That is the current value; change it or press Escape.")
        settings, key = self.flow.context.caracal.settings, self.key
        return lambda: (key, settings.set_value(key, text))
