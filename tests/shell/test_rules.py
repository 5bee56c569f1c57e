"""The refusal rules and the interpretation of a line, pure, against the real command tree."""

from __future__ import annotations

import pytest

from caracal.shell.rules import Blank, Builtin, Invoke, Refusal, interpret
from caracal.shell.session import ShellSession
from caracal.shell.tree import CommandNode
from tests.shell.escapes import ESCAPE_ATTEMPTS


def test_there_are_enough_escape_attempts() -> None:
    assert len(ESCAPE_ATTEMPTS) >= 30
    assert len(set(ESCAPE_ATTEMPTS)) == len(ESCAPE_ATTEMPTS)


@pytest.mark.parametrize("line", ESCAPE_ATTEMPTS)
def test_escape_attempts_are_refused_in_one_line(line: str, tree: CommandNode) -> None:
    action = interpret(line, tree)
    assert isinstance(action, Refusal), action
    assert action.message.startswith("error: ")
    assert "\n" not in action.message
    assert len(action.message) < 200


@pytest.mark.parametrize("line", ESCAPE_ATTEMPTS)
def test_escape_attempts_run_nothing_and_keep_the_shell_going(
    line: str, tree: CommandNode, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[list[str]] = []
    session = ShellSession(tree, lambda argv: ran.append(argv) or 0)
    step = session.handle(line)
    assert ran == []
    assert step.status == 2
    assert not step.finished
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("principl list", "error: unknown command 'principl'. Did you mean 'principal'?"),
        ("polcy list", "error: unknown command 'polcy'. Did you mean 'policy'?"),
        ("mandates list", "error: unknown command 'mandates'. Did you mean 'mandate'?"),
        ("principal lst", "error: unknown command 'principal lst'. Did you mean 'principal list'?"),
        (
            "caracal mandate isue",
            "error: unknown command 'mandate isue'. Did you mean 'mandate issue'?",
        ),
        ("hepl", "error: unknown command 'hepl'. Did you mean 'help'?"),
        ("exti", "error: unknown command 'exti'. Did you mean 'exit'?"),
        ("help principl", "error: unknown command 'principl'. Did you mean 'principal'?"),
        (
            "principal frobnicate",
            "error: unknown command 'principal frobnicate'; type 'help principal' for its commands.",
        ),
    ],
)
def test_typos_get_one_did_you_mean_line(line: str, message: str, tree: CommandNode) -> None:
    assert interpret(line, tree) == Refusal(message)


def test_the_nested_shell_and_flow_are_never_suggested(tree: CommandNode) -> None:
    for typo in ("shel", "shells", "flo", "flows", "serv", "clii"):
        action = interpret(typo, tree)
        assert isinstance(action, Refusal)
        for outside in ("shell", "flow", "serve", "cli"):
            assert f"Did you mean '{outside}'" not in action.message, action


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("principal list --json", ("principal", "list", "--json")),
        ("caracal principal list --json", ("principal", "list", "--json")),
        ("  caracal   principal list  ", ("principal", "list")),
        ("principal register --kind human --name 'Ada L'", None),
        ("-w demo principal list", ("-w", "demo", "principal", "list")),
        ("--workspace=demo principal list", ("--workspace=demo", "principal", "list")),
        ("caracal --version", ("--version",)),
        ("principal", ("principal", "--help")),
        ("principal --help", ("principal", "--help")),
        ("principal list --help", ("principal", "list", "--help")),
        ("mandate validate m1 --intent '{\"a\": 1}'", None),
        ("principal list\t--json", ("principal", "list", "--json")),
    ],
)
def test_caracal_commands_are_invoked(
    line: str, argv: tuple[str, ...] | None, tree: CommandNode
) -> None:
    action = interpret(line, tree)
    assert isinstance(action, Invoke), action
    if argv is not None:
        assert action.argv == argv


def test_leading_caracal_is_the_same_command(tree: CommandNode) -> None:
    assert interpret("caracal principal list", tree) == interpret("principal list", tree)
    assert interpret("caracal", tree) == Builtin("help")


@pytest.mark.parametrize(
    ("line", "action"),
    [
        ("", Blank()),
        ("   \t ", Blank()),
        ("# a comment", Blank()),
        ("help", Builtin("help")),
        ("?", Builtin("help")),
        ("--help", Builtin("help")),
        ("help principal", Builtin("help", ("principal",))),
        ("? principal list", Builtin("help", ("principal", "list"))),
        ("clear", Builtin("clear")),
        ("exit", Builtin("exit")),
        ("quit", Builtin("exit")),
        ("caracal exit", Builtin("exit")),
    ],
)
def test_builtins(line: str, action: object, tree: CommandNode) -> None:
    assert interpret(line, tree) == action


def test_refusal_messages_say_what_is_wrong(tree: CommandNode) -> None:
    def message(line: str) -> str:
        action = interpret(line, tree)
        assert isinstance(action, Refusal)
        return action.message

    assert "';'" in message("exit; sh")
    assert "'&'" in message("exit && bash")
    assert "'$('" in message("principal show $(id)")
    assert "U+000A" in message("principal list\nsh")
    assert "U+0000" in message("principal\x00list")
    assert "unbalanced quotes" in message("principal 'list")
    assert "backslash" in message("principal list \\")
    assert "'!'" in message("!sh")
    assert "nested" in message("shell")
    assert "Flow" in message("flow")
    assert "no arguments" in message("exit now")
    assert "unknown command 'sh'" in message("sh")
    assert "nested" in message("cli")
    assert message("serve") == (
        "error: 'serve' is not available inside the shell; run `caracal serve` outside it."
    )
