"""Flow's keys as data: read from the bindings themselves, named the way a person types them.

The help overlay, the README keymap table and the key-conflict test all read this module, so
none of them can drift from the keys Flow really has."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding
from textual.keys import format_key

from caracal.flow.areas import AREAS

# format_key's symbols where a word reads better in a sentence or a table.
_WORDS = {"⏎": "enter", "⇥": "tab", "␣": "space"}


def key_name(key: str) -> str:
    """`question_mark` -> `?`, `slash` -> `/`, `escape` -> `esc`, `enter` -> `enter`."""
    shown = format_key(key.strip())
    return _WORDS.get(shown, shown)


@dataclass(frozen=True)
class KeyLine:
    keys: tuple[str, ...]  # raw Textual key names
    description: str
    action: str
    binding_id: str

    @property
    def shown(self) -> str:
        return ", ".join(key_name(k) for k in self.keys)

    def matches(self, needle: str) -> bool:
        needle = needle.strip().lower()
        return not needle or needle in f"{self.shown} {self.description}".lower()


def lines(bindings: Iterable[Binding | tuple[str, ...]]) -> list[KeyLine]:
    out = []
    for binding in bindings:
        if isinstance(binding, Binding):
            out.append(
                KeyLine(
                    tuple(k.strip() for k in binding.key.split(",")),
                    binding.description,
                    binding.action,
                    binding.id or "",
                )
            )
    return out


def area_bindings(area: str) -> list[Binding]:
    """An area screen's own bindings (not the ones every area shares)."""
    from caracal.flow.screens.base import AreaScreen

    try:
        screen = importlib.import_module(f"caracal.flow.screens.{area}").SCREEN
    except (ImportError, AttributeError):
        return []
    return [b for b in screen.BINDINGS if isinstance(b, Binding) and b not in AreaScreen.BINDINGS]


def shared_sections() -> list[tuple[str, list[KeyLine]]]:
    from caracal.flow.app import FlowApp
    from caracal.flow.modals.form import FormModal
    from caracal.flow.screens.base import AreaScreen
    from caracal.flow.widgets.paged_table import PagedTable

    return [
        ("Everywhere", lines(FlowApp.BINDINGS)),
        ("In every area", lines(AreaScreen.BINDINGS)),
        ("In tables", lines(PagedTable.BINDINGS)),
        ("In forms", lines(FormModal.BINDINGS)),
    ]


def sections(current: str | None = None) -> list[tuple[str, list[KeyLine]]]:
    """The current area's keys first, then the shared ones, then every other area's."""
    areas = [(a.title, lines(area_bindings(a.key))) for a in AREAS]
    first = [s for a, s in zip(AREAS, areas, strict=True) if a.key == current and s[1]]
    rest = [s for a, s in zip(AREAS, areas, strict=True) if a.key != current and s[1]]
    return first + shared_sections() + rest


# Keys that move, in every table and list: never an action's key.
NAVIGATION_KEYS = frozenset(
    {
        "j",
        "k",
        "g",
        "G",
        "h",
        "l",
        "up",
        "down",
        "left",
        "right",
        "pageup",
        "pagedown",
        "home",
        "end",
    }
)
MOVING_ACTIONS = ("cursor", "page", "jump", "scroll")


@dataclass(frozen=True)
class Meaning:
    what: str
    binding_ids: frozenset[str]


def _meaning(what: str, *ids: str) -> Meaning:
    return Meaning(what, frozenset(ids))


# One meaning per action key across the areas: a new use of a key joins its meaning here.
MEANINGS: dict[str, Meaning] = {
    "n": _meaning(
        "new: create, add or register",
        "backup-create",
        "policy-create",
        "principal-register",
        "provider-add",
        "workspace-create",
    ),
    "x": _meaning(
        "take away the selected row: revoke, remove, delete or deactivate",
        "mandate-revoke",
        "policy-deactivate",
        "principal-revoke",
        "provider-remove",
        "workspace-delete",
    ),
    "e": _meaning("edit the selected row", "provider-edit", "settings-edit"),
    "v": _meaning(
        "check: validate, verify or test",
        "mandate-validate",
        "backup-verify",
        "ledger-verify",
        "provider-test",
    ),
    "i": _meaning("issue a mandate", "mandate-issue"),
    "d": _meaning("delegate from the selected mandate", "mandate-delegate"),
    "t": _meaning("the selected mandate's token", "mandate-token"),
    "T": _meaning("the selected mandate's delegation tree", "mandate-graph"),
    "R": _meaning("rotate the selected principal's key", "principal-rotate"),
    "s": _meaning("suspend the selected principal", "principal-suspend"),
    "a": _meaning("activate the selected principal", "principal-activate"),
    "u": _meaning("use (switch to) the selected workspace", "workspace-switch"),
    "r": _meaning("restore the selected archive", "backup-restore"),
    "I": _meaning(
        "restore (import) a backup archive from any file", "backup-import", "workspace-import"
    ),
    "o": _meaning("open the selected provider's catalog", "provider-catalog"),
    "w": _meaning("write to a file", "ledger-export"),
    "f": _meaning("follow what arrives (press again to pause)", "ledger-follow", "logs-follow"),
    "L": _meaning("cycle the log level shown", "logs-level"),
    "m": _meaning("choose the theme", "settings-theme"),
    "p": _meaning("ask before destructive actions (on or off)", "settings-confirm"),
}


README_START = "<!-- keymap: generated from Flow's bindings by `python -m caracal.flow.keymap` -->"
README_END = "<!-- keymap end -->"


def markdown_table() -> str:
    """Every key as a Markdown table, shared keys first, then each area's (for the README)."""
    rows = ["| where | keys | what they do |", "|---|---|---|"]
    for title, keys in [*shared_sections(), *sections(None)[len(shared_sections()) :]]:
        areas = [k for k in keys if k.binding_id.startswith("goto-")]
        others = [k for k in keys if not k.binding_id.startswith("goto-")]
        if areas:
            shown = ", ".join(f"`{k.shown}`" for k in areas)
            rows.append(f"| {title} | {shown} | {', '.join(k.description for k in areas)} |")
        for key in others:
            shown = ", ".join(f"`{key_name(k)}`" for k in key.keys)
            rows.append(f"| {title} | {shown} | {key.description} |")
    return "\n".join(rows)


def readme_with_keymap(readme: str) -> str:
    """The README with its generated keymap section replaced by the current one."""
    start = readme.index(README_START) + len(README_START)
    end = readme.index(README_END)
    return readme[:start] + "\n" + markdown_table() + "\n" + readme[end:]


if __name__ == "__main__":  # pragma: no cover - a maintainer's command
    import sys
    from pathlib import Path

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("README.md")
    target.write_text(readme_with_keymap(target.read_text(encoding="utf-8")), encoding="utf-8")
