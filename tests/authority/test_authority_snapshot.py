"""A long-lived process keeps what validation checked while the authority version stays the
same. Every change that turns an allow into a deny must still be seen by the very next
decision, whether this process made it or another one did (the CLI, a second replica)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from caracal.services.facade import Caracal
from tests.authority.conftest import github_workspace
from tests.support.cli import run_cli_process

REPOS = "provider:github:resource:repos"
READ = "provider:github:action:read"


@pytest.fixture
def app(backend: str, home: Path) -> Iterator[Caracal]:
    with github_workspace("worker", 0) as opened:
        yield opened


def _outcome(app: Caracal, token: str) -> str:
    decision = app.validation.validate(READ, REPOS, token=token)
    return "ALLOWED" if decision.allowed else decision.reason_code


def _warm(app: Caracal, token: str) -> None:
    """Decide a few times, so that everything the decision reads is kept by the process."""
    for _ in range(3):
        assert _outcome(app, token) == "ALLOWED"


def _cli(*args: str, confirm: bool = True) -> None:
    result = run_cli_process("--workspace", "demo", *args, *(["--yes"] if confirm else []))
    assert result.code == 0, result


Change = Callable[[Caracal, str], object]
CHANGES: dict[str, tuple[Change, Change, str]] = {
    # name: (in this process, from another process, the denial)
    "mandate revoked": (
        lambda app, mid: app.mandates.revoke(mid),
        lambda app, mid: _cli("mandate", "revoke", mid),
        "MANDATE_REVOKED",
    ),
    "subject suspended": (
        lambda app, mid: app.principals.suspend("bot"),
        lambda app, mid: _cli("principal", "suspend", "bot"),
        "SUBJECT_INACTIVE",
    ),
    "issuer's key revoked": (
        lambda app, mid: app.principals.rotate_key("alice", revoke_old=True),
        lambda app, mid: _cli("principal", "rotate-key", "alice", "--revoke-old"),
        "KEY_REVOKED",
    ),
}


@pytest.mark.parametrize("where", ["this process", "another process"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_denies_the_next_decision_at_once(app: Caracal, change: str, where: str) -> None:
    here, elsewhere, denial = CHANGES[change]
    issued = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    other = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    _warm(app, issued.token)
    (here if where == "this process" else elsewhere)(app, issued.id)
    assert _outcome(app, issued.token) == denial
    if change == "mandate revoked":  # what was not revoked is still allowed
        assert _outcome(app, other.token) == "ALLOWED"


def test_an_expired_mandate_is_denied_though_everything_is_kept(app: Caracal) -> None:
    issued = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    _warm(app, issued.token)
    real_clock = app.clock
    app.clock = lambda: real_clock() + 31 * 60 + 60  # past the expiry and the leeway
    assert _outcome(app, issued.token) == "MANDATE_EXPIRED"


def test_a_reactivated_subject_is_allowed_again(app: Caracal) -> None:
    issued = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    _warm(app, issued.token)
    _cli("principal", "suspend", "bot")
    assert _outcome(app, issued.token) == "SUBJECT_INACTIVE"
    _cli("principal", "activate", "bot", confirm=False)
    assert _outcome(app, issued.token) == "ALLOWED"


def test_a_kept_decision_reads_only_the_authority_version(app: Caracal, backend: str) -> None:
    """What makes a decision through the store nearly as fast as one from memory."""
    if backend != "sqlite":  # the statement trace is SQLite's
        return
    from caracal.services.authority_state import StoreAuthorityState

    issued = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    _warm(app, issued.token)
    statements: list[str] = []
    with app.store.read() as conn:
        conn.connection.dbapi_connection.set_trace_callback(statements.append)  # type: ignore[union-attr]
        state = StoreAuthorityState(conn, app.workspace_id, app.signing)
        decision = app.validator.validate(issued.token, READ, REPOS, state, app.clock())
        conn.connection.dbapi_connection.set_trace_callback(None)  # type: ignore[union-attr]
    assert decision.allowed
    assert len(statements) == 1 and "FROM meta" in statements[0], statements
