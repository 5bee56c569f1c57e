"""Every `console` session in docs/ runs as printed, on the embedded store (tests/docs/sessions.py
says how a page marks one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.sessions import DOCS, commands, matches, pages, run


def test_the_docs_have_sessions_to_run() -> None:
    names = {p.relative_to(DOCS.parent).as_posix() for p in pages()}
    wanted = {"docs/configure.md", "docs/operate.md", "docs/workspaces.md", "README.md"}
    assert wanted <= names


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(DOCS.parent).as_posix())
def test_every_console_session_runs_as_printed(page: Path, home: Path) -> None:
    session = commands(page)
    results = run(session, home)
    assert len(results) == len(session), f"{page.name}: the session stopped early"
    for command, (code, output) in zip(session, results, strict=True):
        where = f"{command.page}:{command.line}: $ {command.text}"
        assert code == command.exit_code, (
            f"{where}\nexit {code}, expected {command.exit_code}\n{output}"
        )
        missing = matches(command.expected, output)
        assert missing is None, (
            f"{where}\nthe page shows {missing!r}; the command printed:\n{output}"
        )
