"""What changed by hand since the last `caracal apply`: the changes applying that file again
would make, one per line with its details."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

if TYPE_CHECKING:
    from caracal.core.state_diff import Plan


def describe(drift: Plan | None) -> str:
    if drift is None:
        return (
            "Nothing was ever applied to this workspace from a file, so there is nothing to "
            "compare with. `caracal export` writes its state; `caracal apply -f FILE` applies one."
        )
    if not drift.changes and not drift.problems:
        return "Nothing changed since the last apply: the workspace is as the file says."
    lines = ["Applying the last applied file again would:", ""]
    for change in drift.changes:
        widens = "  (widens authority)" if change.widens else ""
        lines.append(f"{change.op} {change.verb} {change.kind} {change.name}{widens}")
        lines += [f"    {detail}" for detail in change.details]
    lines += [f"! {problem}" for problem in drift.problems]
    lines += ["", "`caracal plan -f FILE` shows the same against any file."]
    return "\n".join(lines)


class DriftModal(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,enter", "close", "Close", id="drift-close"),
        Binding("q", "app.quit_flow", "Quit", show=False, id="drift-quit"),
    ]
    DEFAULT_CSS = """
    DriftModal { align: center middle; }
    DriftModal > Vertical { width: 90%; max-width: 100; height: auto; max-height: 90%;
        border: thick $primary; padding: 0 1; background: $surface; }
    DriftModal #title { text-style: bold; margin-bottom: 1; }
    DriftModal VerticalScroll { height: auto; max-height: 18; }
    DriftModal #keys { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, drift: Plan | None) -> None:
        super().__init__()
        self.drift = drift

    def compose(self) -> ComposeResult:
        count = len(self.drift.changes) if self.drift is not None else 0
        with Vertical():
            yield Label(f"Changed since the last apply ({count})", id="title")
            with VerticalScroll():
                yield Static(describe(self.drift), id="changes", markup=False)
            yield Label("esc close", id="keys")

    def action_close(self) -> None:
        self.dismiss(None)
