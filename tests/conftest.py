from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import postgres_available, scratch_database

_PG_OK: bool | None = None


def _require_postgres() -> None:
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = postgres_available()
    if not _PG_OK:
        if os.environ.get("CARACAL_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required (CARACAL_REQUIRE_POSTGRES=1)")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated CARACAL_HOME with no keyring and no inherited workspace settings."""
    root = tmp_path / "caracal-home"
    monkeypatch.setenv("CARACAL_HOME", str(root))
    monkeypatch.setenv("CARACAL_KEYRING", "off")
    for var in (
        "CARACAL_WORKSPACE",
        "CARACAL_STORE_URL",
        "CARACAL_MASTER_KEY",
        "CARACAL_MASTER_KEY_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def pg_url() -> Iterator[str]:
    _require_postgres()
    with scratch_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run the test once on the embedded store and once on PostgreSQL: new workspaces go to
    the chosen backend through CARACAL_STORE_URL."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    _require_postgres()
    with scratch_database() as url:
        monkeypatch.setenv("CARACAL_STORE_URL", url)
        yield "postgresql"
