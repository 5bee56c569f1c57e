"""Tab completion answers from the real command tree."""

from __future__ import annotations

from caracal.shell.completion import Completer, candidates
from caracal.shell.tree import CommandNode


def test_groups_and_builtins_at_the_start(tree: CommandNode) -> None:
    assert candidates(tree, "", "princ") == ["principal"]
    assert candidates(tree, "caracal ", "princ") == ["principal"]
    assert candidates(tree, "", "p") == ["plan", "policy", "principal", "provider"]
    first = candidates(tree, "", "")
    assert {"workspace", "mandate", "help", "exit"} <= set(first)
    assert "shell" not in first
    assert "flow" not in first
    assert {"export", "plan", "apply"} <= set(first)  # state files, in the host I/O folder


def test_subcommands_of_a_group(tree: CommandNode) -> None:
    assert candidates(tree, "principal ", "") == [
        "activate",
        "list",
        "register",
        "revoke",
        "rotate-key",
        "show",
        "suspend",
    ]
    assert candidates(tree, "principal ", "r") == ["register", "revoke", "rotate-key"]
    assert candidates(tree, "-w demo mandate ", "iss") == ["issue"]


def test_options_of_the_command_being_typed(tree: CommandNode) -> None:
    assert candidates(tree, "principal list ", "--") == ["--help", "--json"]
    assert candidates(tree, "principal register --kind human ", "--") == [
        "--email",
        "--help",
        "--json",
        "--name",
    ]
    # a value is expected after --kind: nothing to offer
    assert candidates(tree, "principal register --kind ", "") == []
    # repeatable value options come back; a flag already given does not
    assert "--resource" in candidates(tree, "policy create --resource a ", "--")
    assert "--json" not in candidates(tree, "policy create --json ", "--")


def test_help_completes_command_names(tree: CommandNode) -> None:
    assert candidates(tree, "help ", "man") == ["mandate"]
    assert candidates(tree, "help mandate ", "v") == ["validate"]


def test_nothing_for_unknown_or_forbidden_commands(tree: CommandNode) -> None:
    assert candidates(tree, "sh ", "") == []
    assert candidates(tree, "flow ", "--") == []
    assert candidates(tree, "exit ", "") == []


class _FakeReadline:
    def __init__(self, line: str) -> None:
        self.line = line

    def get_line_buffer(self) -> str:
        return self.line

    def get_begidx(self) -> int:
        return self.line.rfind(" ") + 1


def test_the_readline_completer_walks_its_matches(tree: CommandNode) -> None:
    completer = Completer(tree, _FakeReadline("principal r"))
    assert [completer("r", state) for state in range(4)] == [
        "register",
        "revoke",
        "rotate-key",
        None,
    ]
    unique = Completer(tree, _FakeReadline("princ"))
    assert [unique("princ", 0), unique("princ", 1)] == ["principal ", None]
