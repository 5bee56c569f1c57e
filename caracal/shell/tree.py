"""The command tree the shell checks lines against and completes from, read from click/typer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommandNode:
    """One command or group: its name, one-line help, options and subcommands."""

    name: str
    summary: str = ""
    children: dict[str, CommandNode] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    value_options: frozenset[str] = frozenset()  # options that take a value
    repeatable_options: frozenset[str] = frozenset()  # options that may be given more than once

    def child(self, name: str) -> CommandNode | None:
        return self.children.get(name)


def tree_from_click(command: Any, name: str | None = None) -> CommandNode:
    """Walk a click command (typer builds one) into plain data; hidden commands are left out."""
    options: list[str] = []
    value_options: set[str] = set()
    repeatable_options: set[str] = set()
    for param in command.params:
        if param.param_type_name != "option":
            continue
        names = [*param.opts, *param.secondary_opts]
        options.extend(names)
        if not param.is_flag and not param.count:
            value_options.update(param.opts)
        if param.multiple or param.count:
            repeatable_options.update(names)
    options.append("--help")
    children = {
        child_name: tree_from_click(child, child_name)
        for child_name, child in (getattr(command, "commands", None) or {}).items()
        if not child.hidden
    }
    return CommandNode(
        name=name or command.name or "",
        summary=command.get_short_help_str(limit=72),
        children=children,
        options=tuple(options),
        value_options=frozenset(value_options),
        repeatable_options=frozenset(repeatable_options),
    )


def load_tree() -> CommandNode:
    """The real `caracal` command tree."""
    import typer

    from caracal.cli.main import app

    return tree_from_click(typer.main.get_command(app), "caracal")
