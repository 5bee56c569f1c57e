from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import postgres_available, scratch_database

_PG_OK: bool | None = None

# ---- the skip guard ---------------------------------------------------------------------------
# In CI (`CI=true`, set by .ci/run) a skipped test is a test that did not run, so it fails the
# run unless it is listed here, by node id, with the reason the skip is not a gap. The list is
# empty: every test runs in CI.
ALLOWED_SKIPS: dict[str, str] = {}
_SKIPPED: list[tuple[str, str]] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`-n N --dist loadgroup`, as in CI) a module runs whole on one worker,
    so its module fixtures are built once; the container stack tests share one stack, so they
    all run on one worker."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = "container-stack" if module.startswith("tests/stack/") else module
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and report.nodeid not in ALLOWED_SKIPS:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append((report.nodeid, str(reason)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SKIPPED and _in_ci() and not _is_xdist_worker(terminalreporter.config):
        terminalreporter.section("skips CI does not allow", sep="=", red=True, bold=True)
        for nodeid, reason in _SKIPPED:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(
            "Each skipped test must run in CI, or be listed in ALLOWED_SKIPS "
            "(tests/conftest.py) with the reason it may skip."
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED and _in_ci() and not _is_xdist_worker(session.config) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
