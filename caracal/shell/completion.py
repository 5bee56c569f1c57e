"""Tab completion from the command tree: groups, then subcommands, then the options of the
command being typed. `candidates` is pure; `Completer` adapts it to `readline`."""

from __future__ import annotations

import shlex
from typing import Any

from caracal.shell.rules import BUILTINS, HELP_WORDS, PREFIX, shell_groups
from caracal.shell.tree import CommandNode


def candidates(tree: CommandNode, before: str, prefix: str) -> list[str]:
    """Completions for the word `prefix`, given the text `before` it on the line."""
    words = _split(before)
    if words and words[0] == PREFIX:
        words = words[1:]
    if words and words[0] in HELP_WORDS:
        return _matching(_help_names(tree, words[1:]), prefix)
    if words and words[0] in BUILTINS:
        return []
    after_options = _skip_root_options(words, tree)
    if after_options is None:
        return []  # the word being typed is the value of a root option
    words = after_options
    if not words:
        if prefix.startswith("-"):
            return _matching(list(tree.options), prefix)
        return _matching([*_visible(tree, tree), *(w for w in BUILTINS if w != "?")], prefix)
    node = tree
    for index, word in enumerate(words):
        child = node.child(word) if node.children else None
        if child is None or (node is tree and not child.children):
            if node.children:
                return []  # an unknown command: nothing sensible to offer
            return _options(node, words[index:], prefix)
        node = child
    if node.children:
        return _matching(_visible(node, tree), prefix)
    return _options(node, [], prefix)


class Completer:
    """`readline.set_completer(Completer(tree, readline))`: answers state 0, 1, ... in turn."""

    def __init__(self, tree: CommandNode, readline: Any) -> None:
        self.tree = tree
        self.readline = readline
        self.matches: list[str] = []

    def __call__(self, text: str, state: int) -> str | None:
        if state == 0:
            line = self.readline.get_line_buffer()
            try:
                self.matches = candidates(self.tree, line[: self.readline.get_begidx()], text)
            except Exception:  # a completer must never break the prompt
                self.matches = []
            if len(self.matches) == 1:
                # Python's readline appends nothing after a completion; a unique one gets the
                # space a shell would add, so the next word can follow.
                self.matches = [self.matches[0] + " "]
        return self.matches[state] if state < len(self.matches) else None


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text, posix=True)
    except ValueError:
        return text.split()


def _visible(node: CommandNode, tree: CommandNode) -> list[str]:
    """Subcommand names to offer: at the top only the groups the shell runs."""
    return shell_groups(tree) if node is tree else list(node.children)


def _help_names(tree: CommandNode, words: list[str]) -> list[str]:
    node = tree
    for word in words:
        child = node.child(word)
        if child is None or (node is tree and not child.children):
            return []
        node = child
    return _visible(node, tree)


def _skip_root_options(words: list[str], tree: CommandNode) -> list[str] | None:
    index = 0
    while index < len(words) and words[index].startswith("-"):
        if words[index] in tree.value_options:
            index += 2
            if index > len(words):
                return None
        else:
            index += 1
    return words[index:]


def _options(node: CommandNode, typed: list[str], prefix: str) -> list[str]:
    if typed and typed[-1] in node.value_options:
        return []  # the word being typed is an option's value
    if not prefix.startswith("-") and prefix:
        return []
    used = set(typed)
    offered = [o for o in node.options if o not in used or o in node.repeatable_options]
    return _matching(offered, prefix)


def _matching(names: list[str], prefix: str) -> list[str]:
    return sorted({name for name in names if name.startswith(prefix)})
