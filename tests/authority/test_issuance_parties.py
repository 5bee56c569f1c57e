"""A process keeps what issuance read about its parties (principals, the subject's policy, the
issuer's signing key) while the authority version stays. Every change to those must still be
seen by the very next issuance, whether this process made it or another one did."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from caracal.core.errors import DeniedError, NotFoundError
from caracal.services.facade import Caracal
from tests.authority.conftest import github_workspace

REPOS = "provider:github:resource:repos"
READ = "provider:github:action:read"
RESOURCES = ["provider:github:resource:*"]
ACTIONS = ["provider:github:action:*"]


@pytest.fixture
def app(backend: str, home: Path) -> Iterator[Caracal]:
    with github_workspace("orchestrator", 2) as opened:
        yield opened


@pytest.fixture(params=["this process", "another process"])
def changer(request: pytest.FixtureRequest, app: Caracal) -> Iterator[Caracal]:
    """Who makes the change: the process that issues, or another one (its own caches)."""
    if request.param == "this process":
        yield app
    else:
        with Caracal.open("demo") as other:
            yield other


def _issue(app: Caracal, depth: int = 1) -> str:
    try:
        app.mandates.issue("alice", "bot", [REPOS], [READ], "30m", delegation_depth=depth)
    except DeniedError as refusal:
        return refusal.reason_code
    return "ISSUED"


def _active_policy(app: Caracal) -> str:
    return next(p["id"] for p in app.policies.all() if p["status"] == "active")


Change = Callable[[Caracal], object]
CHANGES: dict[str, tuple[Change, str]] = {
    "issuer suspended": (lambda c: c.principals.suspend("alice"), "ISSUER_INACTIVE"),
    "subject suspended": (lambda c: c.principals.suspend("bot"), "SUBJECT_INACTIVE"),
    "policy deactivated": (
        lambda c: c.policies.deactivate(_active_policy(c)),
        "NO_ACTIVE_POLICY",
    ),
    "policy narrowed": (
        lambda c: c.policies.create("bot", "1h", RESOURCES, ACTIONS, 0, replace=True),
        "POLICY_DEPTH_EXCEEDED",
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_refuses_the_next_issuance_at_once(
    app: Caracal, changer: Caracal, change: str
) -> None:
    make, refusal = CHANGES[change]
    assert [_issue(app) for _ in range(3)] == ["ISSUED"] * 3
    make(changer)
    assert _issue(app) == refusal


def test_the_next_issuance_signs_with_the_new_key_after_a_revoking_rotation(
    app: Caracal, changer: Caracal
) -> None:
    before = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    rotation = changer.principals.rotate_key("alice", revoke_old=True)
    after = app.mandates.issue("alice", "bot", [REPOS], [READ], "30m")
    assert before.kid in rotation.old_kids and after.kid == rotation.new_kid
    assert app.validation.validate(READ, REPOS, token=after.token).allowed


def test_a_principal_registered_after_a_miss_is_found(app: Caracal, changer: Caracal) -> None:
    with pytest.raises(NotFoundError):
        app.mandates.issue("alice", "carol", [REPOS], [READ], "30m")
    changer.principals.register("worker", "carol")
    changer.policies.create("carol", "1h", RESOURCES, ACTIONS, 0)
    assert app.mandates.issue("alice", "carol", [REPOS], [READ], "30m").claims.depth == 0


def test_a_kept_issuance_reads_no_party_rows(app: Caracal, backend: str) -> None:
    """What keeps issuance to one read besides the ledger head: the versions."""
    if backend != "sqlite":  # the statement trace is SQLite's
        return
    _issue(app)
    statements: list[str] = []

    def trace(dbapi_conn: Any, _record: Any, _proxy: Any = None) -> None:
        dbapi_conn.set_trace_callback(statements.append)

    def untrace(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(None)

    event.listen(app.store.engine, "checkout", trace)
    event.listen(app.store.engine, "checkin", untrace)
    try:
        assert _issue(app) == "ISSUED"
    finally:
        event.remove(app.store.engine, "checkout", trace)
        event.remove(app.store.engine, "checkin", untrace)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2, reads
    assert "ledger_head" in reads[0] and "FROM meta" in reads[1], reads
