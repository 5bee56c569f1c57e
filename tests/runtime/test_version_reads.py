"""A replica on PostgreSQL without the Redis change feed reads the store's authority version
off the event loop, one read shared by the decisions waiting for it: concurrent decisions are
all answered, and a revocation committed before a request is always honoured by it."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
from tests.runtime.test_authorize import READ, REPOS, make_workspace
from tests.support.cli import run_cli
from tests.support.runtime import serve

pytestmark = pytest.mark.postgres


def test_concurrent_decisions_share_version_reads_and_see_every_revocation(
    home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARACAL_STORE_URL", pg_url)
    monkeypatch.delenv("CARACAL_REDIS_URL", raising=False)
    token = make_workspace("demo")
    with serve() as server, ThreadPoolExecutor(24) as pool:

        def ask(_: int) -> tuple[int, str]:
            reply = server.authorize(token=token, action=READ, resource=REPOS)
            body = reply.json()
            return reply.status, body.get("reason_code") or body.get("mandate_id", "")

        # Bursts of concurrent requests, each burst starting when the loop is idle (the
        # first request of a burst starts a read; the others wait for it or the next one).
        answers = []
        for _ in range(4):
            answers += list(pool.map(ask, range(48)))
        assert {status for status, _ in answers} == {200}, answers
        mandate_id = answers[0][1]
        with Caracal.open("demo") as app:
            allowed = app.ledger.count(LedgerFilter(types=["validation.allowed"]))
        assert allowed == len(answers)
        metrics = server.request("GET", "/metrics").body.decode()
        reads = int(re.search(r"^caracal_authority_version_reads_total (\d+)$", metrics, re.M)[1])
        assert 0 < reads < len(answers), f"{reads} reads for {len(answers)} decisions"
        assert run_cli("mandate", "revoke", mandate_id, "--yes").code == 0
        after = list(pool.map(ask, range(48)))
        assert after == [(401, "MANDATE_REVOKED")] * 48
