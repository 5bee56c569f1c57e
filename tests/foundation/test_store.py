"""The store adapter on both backends: connection rules, migrations, retries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from caracal.core.errors import ConfigError
from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec
from caracal.store import provider_rows, schema
from caracal.store.engine import StoreLocation, drop_store, open_store, resolve_location
from caracal.store.migrations import LATEST, MIGRATIONS, current_version, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield StoreLocation(f"sqlite:///{tmp_path / 'store.db'}")
        return
    pg_url = request.getfixturevalue("pg_url")
    yield resolve_location(pg_url, "caracal_t_store", tmp_path)


def _spec() -> ProviderSpec:
    return ProviderSpec(
        "github",
        "https://api.github.com",
        resources=(ProviderResource("repos", "Repositories"),),
        actions=(ProviderAction("repos", "read", "GET", "/repos"),),
    )


def test_fresh_store_is_at_latest_version_and_matches_the_model(location: StoreLocation) -> None:
    store = open_store(location, create=True)
    try:
        with store.read() as conn:
            assert current_version(conn) == LATEST
            inspector = inspect(conn)
            tables = set(inspector.get_table_names())
            assert tables == set(schema.metadata.tables)
            for table in schema.metadata.sorted_tables:
                reflected = {c["name"] for c in inspector.get_columns(table.name)}
                assert reflected == {c.name for c in table.columns}, table.name
                pk = set(inspector.get_pk_constraint(table.name)["constrained_columns"])
                assert pk == {c.name for c in table.primary_key.columns}, table.name
    finally:
        store.dispose()


def test_upgrade_from_the_first_schema_version_keeps_data(location: StoreLocation) -> None:
    store = open_store(location, create=True, migrate=False)
    try:
        assert upgrade(store, target=MIGRATIONS[0].version) == 1
        store.write(lambda conn: provider_rows.save(conn, _spec(), None))
        assert upgrade(store) == LATEST
        with store.read() as conn:
            assert current_version(conn) == LATEST
            [(spec, ref)] = provider_rows.load_all(conn)
        assert spec == _spec() and ref is None
        # Re-opening is a no-op on an up-to-date store.
        assert upgrade(store) == LATEST
    finally:
        store.dispose()


def test_a_store_from_a_newer_caracal_is_refused(location: StoreLocation) -> None:
    store = open_store(location, create=True)
    try:
        store.write(
            lambda conn: conn.execute(
                schema.schema_versions.insert().values(
                    version=LATEST + 1, name="future", applied_at=0
                )
            )
        )
        with pytest.raises(ConfigError, match="newer than this Caracal"):
            upgrade(store)
    finally:
        store.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    store = open_store(StoreLocation(f"sqlite:///{tmp_path / 's.db'}"), create=True)
    try:
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.dispose()


def test_foreign_keys_cascade_catalog_rows(location: StoreLocation) -> None:
    store = open_store(location, create=True)
    try:
        store.write(lambda conn: provider_rows.save(conn, _spec(), None))
        store.write(lambda conn: conn.execute(schema.providers.delete()))
        with store.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM provider_actions")).scalar() == 0
    finally:
        store.dispose()


def test_postgres_tables_live_in_the_workspace_schema_only(pg_url: str, tmp_path: Path) -> None:
    location = resolve_location(pg_url, "caracal_t_only", tmp_path)
    store = open_store(location, create=True)
    try:
        with store.read() as conn:
            count = text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s")
            public = conn.execute(count, {"s": "public"}).scalar()
            mine = conn.execute(count, {"s": "caracal_t_only"}).scalar()
        assert public == 0 and mine == len(schema.metadata.tables)
    finally:
        store.dispose()
        drop_store(location)


@pytest.mark.parametrize("bad", ["Bad", "x;drop table y", "1abc", "a" * 64, "", None])
def test_schema_names_are_validated(bad: str | None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="schema"):
        resolve_location("postgresql+psycopg://postgres@127.0.0.1/postgres", bad, tmp_path)


def test_unsupported_urls_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="supports sqlite and postgresql"):
        resolve_location("mysql://x@y/z", None, tmp_path)
    with pytest.raises(ConfigError, match="not a database URL"):
        resolve_location("::::", None, tmp_path)


def test_sqlite_writer_waits_out_a_held_lock_instead_of_failing(tmp_path: Path) -> None:
    location = StoreLocation(f"sqlite:///{tmp_path / 'lock.db'}")
    holder = open_store(location, create=True)
    # busy_timeout 0 forces the retry loop (not SQLite's own busy handler) to do the waiting.
    waiter = open_store(location, busy_timeout_ms=0)
    try:
        held = threading.Event()

        def hold() -> None:
            def work(conn):  # type: ignore[no-untyped-def]
                held.set()
                time.sleep(0.4)

            holder.write(work)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(5)
        started = time.monotonic()
        waiter.write(lambda conn: provider_rows.save(conn, _spec(), None))
        waited = time.monotonic() - started
        thread.join()
        assert waited > 0.1
        with waiter.read() as conn:
            assert len(provider_rows.load_all(conn)) == 1
    finally:
        holder.dispose()
        waiter.dispose()


def test_background_checkpoints_keep_commits_from_copying_the_log(tmp_path: Path) -> None:
    """With the checkpoint thread on, commits no longer copy the WAL back into the database
    themselves (the runtime's p99 was those copies): the thread does, and the database file
    holds the data while the log is reused instead of growing."""
    path = tmp_path / "s.db"
    store = open_store(StoreLocation(f"sqlite:///{path}"), create=True)
    checkpointer = store.checkpoint_in_background()
    assert checkpointer is not None
    try:
        with store.read() as conn:
            threshold = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert threshold is not None and threshold > 4000
        blob = "x" * 3000
        for batch in range(300):  # about 3,000 pages of log without a checkpoint
            store.write(
                lambda conn, b=batch: conn.execute(
                    text("INSERT INTO meta (key, value) VALUES (:k, :v)"),
                    [{"k": f"k{b}-{i}", "v": blob} for i in range(10)],
                )
            )
        deadline = time.monotonic() + 10
        while checkpointer.runs < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(checkpointer.interval * 3)
        assert checkpointer.runs >= 3
        # The rows were copied back into the database file (they were only in the log).
        assert path.stat().st_size > 3000 * 3000
        # The next commit starts the log over instead of growing it.
        store.write(lambda conn: conn.execute(text("INSERT INTO meta VALUES ('last', 'x')")))
        with store.read() as conn:
            _, after, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert after < 10, after
    finally:
        checkpointer.close()
        store.dispose()
