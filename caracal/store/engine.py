"""Engine construction, transactions with retry, and the per-backend connection rules."""

from __future__ import annotations

import logging
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from caracal.core.errors import ConfigError, ConflictError, NotFoundError, UnavailableError
from caracal.core.redact import mask_url
from caracal.store.checkpoint import WalCheckpointer

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RETRY_ATTEMPTS = 12
# What validation reads and the ledger writes: `/health` checks each is there.
DECISION_TABLES = (
    "principals",
    "principal_keys",
    "policies",
    "mandates",
    "providers",
    "tools",
    "ledger_events",
    "ledger_head",
)
# PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock, lock timeout.
_PG_RETRY_STATES = {"40001", "40P01", "55P03"}


@dataclass(frozen=True)
class StoreLocation:
    """Where a workspace's data lives: an SQLite file, or a PostgreSQL schema."""

    url: str
    pg_schema: str | None = None

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith("postgresql") else "sqlite"

    def describe(self) -> str:
        if self.backend == "sqlite":
            return "SQLite"
        return f"PostgreSQL ({self.pg_schema})"


def resolve_location(url: str, pg_schema: str | None, workspace_dir: Path) -> StoreLocation:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"store.url {mask_url(url)!r} is not a database URL.") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise ConfigError("store.url must name an SQLite file, e.g. sqlite:///store.db.")
        path = Path(database)
        if not path.is_absolute():
            path = workspace_dir / path
        return StoreLocation(f"sqlite:///{path}")
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
            raise ConfigError("PostgreSQL URLs must use the psycopg driver: postgresql+psycopg://…")
        if not pg_schema or not SCHEMA_NAME.fullmatch(pg_schema):
            raise ConfigError(
                f"store.pg_schema {pg_schema!r} is not a valid schema name "
                "(lowercase letters, digits, '_', at most 63)."
            )
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return StoreLocation(url, pg_schema)
    raise ConfigError(
        f"store.url uses {parsed.get_backend_name()!r}; Caracal supports sqlite and postgresql."
    )


def schema_for_workspace(name: str) -> str:
    schema = "caracal_" + name.replace("-", "_")
    if not SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(f"Workspace {name!r} cannot be mapped to a PostgreSQL schema name.")
    return schema


_AFTER_COMMIT = "caracal_after_commit"


def after_commit(conn: Connection, hook: Callable[[], None]) -> None:
    """Run `hook` once the write transaction `conn` is in has committed (never if it rolls
    back or is retried). For news that must not get ahead of the data: a signed ledger head
    published outside the store, say."""
    hooks = conn.info.get(_AFTER_COMMIT)
    if hooks is None:
        raise RuntimeError("after_commit needs a transaction from Store.write or transaction")
    hooks.append(hook)


def _run_hooks(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # the data is committed; a failing follower is logged, not raised
            log.exception("an after-commit step failed")


def _is_retryable(exc: Exception) -> bool:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    if state in _PG_RETRY_STATES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database table is locked" in message


class Store:
    """One workspace's database. `write()` retries transient lock conflicts with backoff."""

    def __init__(self, engine: Engine, location: StoreLocation) -> None:
        self.engine = engine
        self.location = location

    @property
    def backend(self) -> str:
        return self.location.backend

    def dispose(self) -> None:
        self.engine.dispose()

    def checkpoint_in_background(self) -> WalCheckpointer | None:
        """On SQLite, move this process's WAL checkpoints off its commits onto a thread (see
        `checkpoint`); the caller closes what it gets. None on PostgreSQL."""
        if self.backend != "sqlite":
            return None
        checkpointer = WalCheckpointer(self.location.url.removeprefix("sqlite:///"))
        checkpointer.start(self.engine)
        return checkpointer

    def ping(self) -> None:
        """One round trip to the database (raises what the driver raises)."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def check_decision_tables(self) -> None:
        """Read, in one transaction, a row of every table a decision reads and the ledger head
        a decision is appended under (raises what the driver raises, or LookupError for a
        missing head row): `SELECT 1` succeeds on a server whose workspace schema is gone."""
        from caracal.store.ledger_rows import read_head

        with self.read() as conn:
            for table in DECISION_TABLES:
                conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1"))  # noqa: S608 (fixed names)
            read_head(conn)

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A read transaction. `snapshot` makes every statement in it see one consistent state
        (SQLite read transactions always do; PostgreSQL needs REPEATABLE READ for it)."""
        with self._connect() as raw:
            conn = raw.execution_options(caracal_readonly=True)
            if snapshot and self.backend == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction, not retried: for stores nobody else can see yet (a
        workspace being restored), where the work streams and cannot be replayed."""
        hooks: list[Callable[[], None]] = []
        with self._connect() as conn:
            conn.info[_AFTER_COMMIT] = hooks
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info.pop(_AFTER_COMMIT, None)
        _run_hooks(hooks)

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction; retry it whole on lock conflicts."""
        delay = 0.002
        for attempt in range(_RETRY_ATTEMPTS):
            hooks: list[Callable[[], None]] = []
            try:
                with self._connect() as conn:
                    conn.info[_AFTER_COMMIT] = hooks
                    try:
                        with conn.begin():
                            result = work(conn)
                    finally:
                        conn.info.pop(_AFTER_COMMIT, None)
                _run_hooks(hooks)
                return result
            except (DBAPIError, sqlite3.OperationalError) as exc:
                # (BEGIN IMMEDIATE goes straight to the driver, so its error is not wrapped.)
                if not _is_retryable(exc) or attempt == _RETRY_ATTEMPTS - 1:
                    raise
                log.debug("retrying transaction after %s (attempt %d)", exc, attempt + 1)
                time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
                delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise UnavailableError(
                f"Cannot reach the {self.location.describe()} store: {_first_line(exc.orig)}; "
                "check that the database is running."
            ) from None
        try:
            yield conn
        finally:
            conn.close()


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _sqlite_engine(location: StoreLocation, busy_timeout_ms: int) -> Engine:
    engine = create_engine(location.url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A larger page cache keeps the ledger's lookup indexes resident during bursts.
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.execute("PRAGMA wal_autocheckpoint=4000")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front so two writers never deadlock upgrading a read lock.
        # Sent on the DBAPI connection directly: this runs for every transaction.
        readonly = conn.get_execution_options().get("caracal_readonly", False)
        conn.connection.dbapi_connection.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")  # type: ignore[union-attr]

    return engine


def pg_connect_args(**extra: Any) -> dict[str, Any]:
    """libpq arguments for every PostgreSQL connection. A password may come from the file
    named by CARACAL_STORE_PASSWORD_FILE (a container secret) rather than the URL, so that it
    never appears in an environment listing."""
    args: dict[str, Any] = {"connect_timeout": 5, **extra}
    password_file = os.environ.get("CARACAL_STORE_PASSWORD_FILE")
    if password_file:
        try:
            args["password"] = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"CARACAL_STORE_PASSWORD_FILE {password_file}: {exc.strerror}; "
                "point it at a readable file."
            ) from None
    return args


def _postgres_engine(location: StoreLocation, pool_size: int) -> Engine:
    return create_engine(
        location.url,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args=pg_connect_args(options=f"-csearch_path={location.pg_schema}"),
    )


def open_store(
    location: StoreLocation,
    *,
    create: bool = False,
    pool_size: int = 5,
    busy_timeout_ms: int = 5000,
    migrate: bool = True,
) -> Store:
    """Open (and with `create`, initialise) a workspace store; apply pending migrations."""
    from caracal.store.migrations import upgrade

    if location.backend == "sqlite":
        path = Path(location.url.removeprefix("sqlite:///"))
        if not create and not path.exists():
            raise NotFoundError(
                f"The store file {path} is missing; restore the workspace from a backup."
            )
        if create and not path.exists():
            # SQLite gives its -wal and -shm files the database file's mode: start private.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        engine = _sqlite_engine(location, busy_timeout_ms)
    else:
        if create:
            _create_schema(location)
        engine = _postgres_engine(location, pool_size)
    store = Store(engine, location)
    try:
        if location.backend == "postgresql" and not create:
            _require_schema(store)
        if migrate:
            upgrade(store)
    except BaseException:
        store.dispose()
        raise
    return store


def _create_schema(location: StoreLocation) -> None:
    engine = create_engine(location.url, connect_args=pg_connect_args())
    try:
        with engine.connect() as conn, conn.begin():
            exists = conn.execute(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                {"s": location.pg_schema},
            ).first()
            if exists:
                raise ConflictError(
                    f"PostgreSQL schema {location.pg_schema!r} already exists; drop it or "
                    "choose another workspace name."
                )
            conn.exec_driver_sql(f'CREATE SCHEMA "{location.pg_schema}"')
    except OperationalError as exc:
        raise UnavailableError(
            f"Cannot reach PostgreSQL: {_first_line(exc.orig)}; check that it is running."
        ) from None
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42P06":  # duplicate_schema
            raise ConflictError(
                f"PostgreSQL schema {location.pg_schema!r} already exists; drop it or "
                "choose another workspace name."
            ) from None
        raise
    finally:
        engine.dispose()


def _require_schema(store: Store) -> None:
    with store.read() as conn:
        found = conn.execute(
            text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
            {"s": store.location.pg_schema},
        ).first()
    if not found:
        raise NotFoundError(
            f"PostgreSQL schema {store.location.pg_schema!r} is missing; "
            "restore the workspace from a backup."
        )


def drop_store(location: StoreLocation) -> None:
    """Remove a workspace's PostgreSQL schema (SQLite files go with the workspace folder)."""
    if location.backend != "postgresql":
        return
    engine = create_engine(location.url, connect_args=pg_connect_args())
    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{location.pg_schema}" CASCADE')
    except OperationalError as exc:
        raise UnavailableError(
            f"Cannot reach PostgreSQL to drop schema {location.pg_schema!r}: "
            f"{_first_line(exc.orig)}."
        ) from None
    finally:
        engine.dispose()


def driver_errors() -> tuple[type[Exception], ...]:
    """The drivers' own exceptions (statements run on a driver cursor raise them unwrapped)."""
    import psycopg

    return (sqlite3.Error, psycopg.Error)
