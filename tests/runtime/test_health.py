"""`/health` says 503 whenever a decision would: it checks what decisions read and write."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from caracal.services.facade import Caracal
from tests.conftest import _require_postgres
from tests.runtime.test_authorize import READ, REPOS, make_workspace
from tests.support.postgres import scratch_database
from tests.support.runtime import serve

pytestmark = pytest.mark.timeout(120)


def test_a_dropped_workspace_schema_makes_health_503_as_decisions_are(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_postgres()
    monkeypatch.delenv("CARACAL_REDIS_URL", raising=False)
    with scratch_database() as url:
        monkeypatch.setenv("CARACAL_STORE_URL", url)
        token = make_workspace("demo")
        with Caracal.open("demo") as app:
            schema = app.store.location.pg_schema
        assert schema
        with serve() as server:
            assert server.request("GET", "/health").status == 200
            assert server.authorize(token=token, action=READ, resource=REPOS).status == 200
            dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            decision = server.authorize(token=token, action=READ, resource=REPOS)
            assert decision.status == 503, decision
            health = server.request("GET", "/health")
            assert health.status == 503, health
            body = health.json()
            assert body["failing"] == ["store"]
            assert schema not in health.body.decode()  # no name of the store's layout leaks


def test_health_shows_the_ledger_writer(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARACAL_REDIS_URL", raising=False)
    make_workspace("demo")
    with serve() as server:
        reply = server.request("GET", "/health")
        assert reply.status == 200
        assert reply.json()["dependencies"]["ledger_writer"]["ok"] is True
