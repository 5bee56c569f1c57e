"""What a line typed at `caracal shell` may do. Pure: no I/O, no click, nothing runs here.

Commands never reach a system shell (they run in process through `caracal.cli.main.run`), so
these refusals are not what keeps a shell away; they make the boundary plain to the person
typing and stop a pasted shell one-liner from half-running as a Caracal command. A line is
refused whole, before anything runs, when it holds anything a system shell would interpret
(metacharacters, substitutions, control characters, a leading `!`), has unbalanced quotes, or
does not name a Caracal command group."""

from __future__ import annotations

import difflib
import shlex
import unicodedata
from dataclasses import dataclass

from caracal.shell.tree import CommandNode

MAX_LINE = 16_384
PREFIX = "caracal"  # `caracal principal list` is `principal list`
METACHARACTERS = (";", "|", "&", "`", "$(", "${", ">", "<")
# Only the top-level command *groups* run in the shell (workspace, principal, mandate ...);
# single top-level commands (flow, shell, the stack's up/down/serve/cli ...) belong outside it.
OUTSIDE_ONLY = {
    "shell": "error: you are already in the Caracal shell; nested shells are not available.",
    "cli": "error: you are already in the Caracal shell; nested shells are not available.",
    "flow": "error: Flow cannot run inside the shell; run `caracal flow` outside it.",
}
# Single top-level commands that act on the workspace through files in the host I/O folder,
# and so run in the shell too (where the container stack's workspaces are reached).
SHELL_COMMANDS = frozenset({"export", "plan", "apply"})
HELP_WORDS = ("help", "?")
EXIT_WORDS = ("exit", "quit")
BUILTINS = (*HELP_WORDS, *EXIT_WORDS, "clear")
# Bidirectional overrides make a line read differently from what runs ("Trojan source").
_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_SHOWN_MAX = 40


@dataclass(frozen=True)
class Blank:
    """Nothing to do: an empty line or a `#` comment."""


@dataclass(frozen=True)
class Builtin:
    """A shell command: `help` (args name a group and command), `clear` or `exit`."""

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invoke:
    """Run `caracal ARGV...` in process."""

    argv: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """Refused; nothing runs. `message` is one line for stderr."""

    message: str


Action = Blank | Builtin | Invoke | Refusal


def interpret(line: str, tree: CommandNode) -> Action:
    """Decide what one typed line does, against the command tree `tree` (the `caracal` root)."""
    problem = character_problem(line)
    if problem is not None:
        return Refusal(problem)
    if not line.strip() or line.lstrip().startswith("#"):
        return Blank()
    try:
        words = shlex.split(line, posix=True)
    except ValueError as exc:
        return Refusal(_quoting_problem(exc))
    if words and words[0] == PREFIX:
        words = words[1:]
    if not words:
        return Builtin("help")
    if words[0] in BUILTINS:
        return _builtin(words[0], words[1:], tree)
    return _command(words, tree)


def character_problem(line: str) -> str | None:
    """Why the raw text of `line` is refused before it is even split, or None."""
    if len(line) > MAX_LINE:
        return f"error: the line is longer than {MAX_LINE} characters; shorten it."
    for char in line:
        if char == "\t":
            continue
        category = unicodedata.category(char)
        if category == "Cs":
            return "error: the line is not valid UTF-8 text; retype it."
        if category in ("Cc", "Zl", "Zp") or ord(char) in _BIDI_CONTROLS:
            return (
                f"error: the line contains a control character (U+{ord(char):04X}); "
                "type one command per line, without escape sequences."
            )
    if line.lstrip().startswith("!"):
        return (
            "error: '!' (history expansion or shell escape) is not available; "
            "this shell runs only Caracal commands."
        )
    found = [(line.find(meta), meta) for meta in METACHARACTERS if meta in line]
    if found:
        meta = min(found)[1]
        return (
            f"error: '{meta}' is not allowed: this shell runs one Caracal command per line, "
            "without pipes, redirections, substitutions or chaining."
        )
    return None


def shell_groups(tree: CommandNode) -> list[str]:
    """The top-level commands the shell runs: the command groups and SHELL_COMMANDS, in the
    tree's order."""
    return [name for name, node in tree.children.items() if node.children or name in SHELL_COMMANDS]


def suggestion(word: str, candidates: list[str]) -> str | None:
    """The closest candidate to a mistyped word, when one is close enough."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _quoting_problem(exc: ValueError) -> str:
    if "escaped" in str(exc):
        return "error: the line ends with a lone backslash; remove it or quote it."
    return "error: unbalanced quotes; close the quote and type the line again."


def _builtin(word: str, args: list[str], tree: CommandNode) -> Action:
    if word in HELP_WORDS:
        return _help(args, tree)
    if args:
        return Refusal(f"error: '{word}' takes no arguments.")
    return Builtin("exit" if word in EXIT_WORDS else word)


def _help(args: list[str], tree: CommandNode) -> Action:
    node: CommandNode = tree
    path: list[str] = []
    for word in args:
        if word.startswith("-"):
            return Refusal(
                "error: 'help' takes command names, not options; for example 'help principal list'."
            )
        if not node.children:
            return Refusal(f"error: '{' '.join(path)}' has no subcommands.")
        found = _step(node, path, word)
        if isinstance(found, Refusal):
            return found
        node = found
        path.append(word)
    return Builtin("help", tuple(args))


def _command(words: list[str], tree: CommandNode) -> Action:
    options, rest = _root_options(words, tree)
    if isinstance(rest, Refusal):
        return rest
    if any(word in ("-h", "--help") for word in options):
        return Builtin("help")
    if not rest:
        # `--version` is the one root flag that does something alone here; completion's
        # --install-completion / --show-completion are for the host's shell, not this one.
        if "--version" in options:
            return Invoke(tuple(options))
        return Refusal("error: name a command after the options, for example 'principal list'.")
    node: CommandNode = tree
    path: list[str] = []
    for word in rest:
        if word.startswith("-") or not node.children:
            break
        found = _step(node, path, word)
        if isinstance(found, Refusal):
            return found
        node = found
        path.append(word)
    argv = [*options, *rest]
    if node.children and len(path) == len(rest):
        argv.append("--help")  # a bare group lists its commands rather than failing
    return Invoke(tuple(argv))


def _root_options(words: list[str], tree: CommandNode) -> tuple[list[str], list[str] | Refusal]:
    """Split `--workspace NAME`-style options of the root command from the words after them."""
    options: list[str] = []
    index = 0
    while index < len(words) and words[index].startswith("-"):
        word = words[index]
        name, has_value, _ = word.partition("=")
        if name in tree.value_options:
            if has_value:
                options.append(word)
                index += 1
            elif index + 1 < len(words):
                options.extend(words[index : index + 2])
                index += 2
            else:
                return options, Refusal(f"error: option '{name}' needs a value.")
        elif word in tree.options or word == "-h":
            options.append(word)
            index += 1
        else:
            return options, Refusal(
                f"error: unknown option '{_shown(word)}'; type 'help' for the commands."
            )
    return options, words[index:]


def _step(node: CommandNode, path: list[str], word: str) -> CommandNode | Refusal:
    """The subcommand `word` of `node` (reached through `path`), or why it is refused."""
    child = node.child(word)
    if not path and child is not None and not child.children and word not in SHELL_COMMANDS:
        return Refusal(
            OUTSIDE_ONLY.get(word)
            or f"error: '{word}' is not available inside the shell; run `caracal {word}` outside it."
        )
    if child is not None:
        return child
    typed = " ".join([*path, _shown(word)])
    if path:
        candidates = list(node.children)
    else:
        candidates = [*shell_groups(node), *(name for name in BUILTINS if name != "?")]
    close = suggestion(word, candidates)
    if close is not None:
        meant = " ".join([*path, close])
        return Refusal(f"error: unknown command '{typed}'. Did you mean '{meant}'?")
    if path:
        where = " ".join(path)
        return Refusal(f"error: unknown command '{typed}'; type 'help {where}' for its commands.")
    return Refusal(
        f"error: unknown command '{typed}'; this shell runs only Caracal commands "
        "(type 'help' for the list)."
    )


def _shown(word: str) -> str:
    return word if len(word) <= _SHOWN_MAX else word[: _SHOWN_MAX - 1] + "…"
