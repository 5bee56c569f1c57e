"""One long-lived process (as the runtime is) keeps the replayed event lives it checks rows
against: every legitimate change is seen by the next decision, and a row edited behind the
ledger's back is still caught."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from caracal.services.facade import Caracal
from caracal.store.schema import mandates
from tests.authority.conftest import github_workspace

REPOS = "provider:github:resource:repos"
READ = "provider:github:action:read"


@pytest.fixture
def app(backend: str, home: Path) -> Iterator[Caracal]:
    with github_workspace("worker", 0) as opened:
        yield opened


def _allowed(app: Caracal, token: str) -> str:
    decision = app.validation.validate(READ, REPOS, token=token)
    return "ALLOWED" if decision.allowed else str(decision.reason_code)


def test_changes_after_a_decision_are_seen_by_the_next_one(app: Caracal) -> None:
    first = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    assert _allowed(app, first.token) == "ALLOWED"  # the lives are now kept
    # A new key (no authority version change): mandates it signs validate at once.
    app.principals.rotate_key("alice")
    second = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    assert second.kid != first.kid
    assert _allowed(app, second.token) == _allowed(app, first.token) == "ALLOWED"
    app.principals.suspend("bot")
    assert _allowed(app, first.token) == "SUBJECT_INACTIVE"
    app.principals.activate("bot")
    assert _allowed(app, first.token) == "ALLOWED"
    app.mandates.revoke(first.id)
    assert _allowed(app, first.token) == "MANDATE_REVOKED"
    assert _allowed(app, second.token) == "ALLOWED"


def test_a_row_edited_behind_the_ledger_is_caught_after_caching(app: Caracal) -> None:
    issued = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    assert _allowed(app, issued.token) == "ALLOWED"
    app.mandates.revoke(issued.id)
    assert _allowed(app, issued.token) == "MANDATE_REVOKED"
    # Someone with write access to the store clears the revocation: the events still say it.
    app.store.write(
        lambda conn: conn.execute(
            update(mandates).where(mandates.c.id == issued.id).values(revoked_at=None)
        )
    )
    assert _allowed(app, issued.token) == "MANDATE_REVOKED"
