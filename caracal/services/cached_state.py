"""Validation's view of the store, cached for a runtime replica.

Two ways to stay exact. While the replica follows the Redis change feed (`following`), a
change announcement empties the cache and entries live at most `change_feed.CACHE_SECONDS`
(the bound if an announcement is lost). Otherwise every decision first reads the store's
authority version (`meta.authority_version`, changed in the same transaction as every
revocation, status change and key retirement, and every change of a provider or an MCP tool) and empties the cache when it moved: one small
read instead of every lookup. Absent rows are never cached."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from caracal.core.validation import KeyInfo, MandateState
from caracal.services.authority_state import StoreAuthorityState
from caracal.services.change_feed import CACHE_SECONDS
from caracal.services.facade import Caracal
from caracal.store import meta, principal_rows


class AuthorityCache:
    def __init__(self, app: Caracal, ttl: float = CACHE_SECONDS) -> None:
        self.app = app
        self.ttl = ttl
        self.following = False
        self.version: str | None = None
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._sqlite_reader: meta.SqliteAuthorityVersion | None = None
        self._tick_read = False
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.version = None

    def sync(self, version: str) -> None:
        """The store's authority version, read for this decision."""
        if version != self.version:
            with self._lock:
                self._entries.clear()
                self.version = version

    def lookup(self, kind: str, key: str, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        entry = self._entries.get((kind, key))
        if entry is not None and (not self.following or now - entry[0] < self.ttl):
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = load()
        if value is not None:
            with self._lock:
                if len(self._entries) > 100_000:
                    self._entries.clear()
                self._entries[(kind, key)] = (now, value)
        return value

    def state(self, conn_factory: Callable[[], Any]) -> CachedAuthorityState:
        state = CachedAuthorityState(self, conn_factory)
        if not self.following and not self._version_fresh():
            version = self._sqlite_version()
            if version is None:
                version = meta.authority_version(state.connection())
            self.sync(version)
        return state

    def read(
        self, kind: str, key: str, load: Callable[[], Any], conn_factory: Callable[[], Any]
    ) -> Any:
        """`load()`, or its cached value while the authority version has not moved (or, when
        following Redis, for at most the TTL): for what else the runtime reads per request,
        such as an MCP server and its tools, whose changes move the version too."""
        self.state(conn_factory)
        return self.lookup(kind, key, load)

    def _version_fresh(self) -> bool:
        """Inside an event loop, decisions handled in the same loop iteration share one read
        of the version, made after all of their requests arrived; the next iteration reads
        it again."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._tick_read:
            return True
        self._tick_read = True
        loop.call_soon(self._end_tick)
        return False

    def _end_tick(self) -> None:
        self._tick_read = False

    def _sqlite_version(self) -> str | None:
        """On SQLite, the version without a pooled connection (see SqliteAuthorityVersion)."""
        location = self.app.store.location
        if location.backend != "sqlite":
            return None
        if self._sqlite_reader is None:
            self._sqlite_reader = meta.SqliteAuthorityVersion(
                location.url.removeprefix("sqlite:///")
            )
        return self._sqlite_reader.read()


class CachedAuthorityState:
    """An AuthorityState whose store reads happen only on a cache miss, through a connection
    opened on first need (so a fully cached decision touches no connection at all)."""

    def __init__(self, cache: AuthorityCache, conn_factory: Callable[[], Any]) -> None:
        self.cache = cache
        self._conn_factory = conn_factory
        self._conn: Any = None
        self._store_state: StoreAuthorityState | None = None

    def connection(self) -> Any:
        if self._conn is None:
            self._conn = self._conn_factory()
        return self._conn

    def _store(self) -> StoreAuthorityState:
        if self._store_state is None:
            app = self.cache.app
            self._store_state = StoreAuthorityState(
                self.connection(), app.workspace_id, app.signing
            )
        return self._store_state

    @property
    def workspace_id(self) -> str:
        return self.cache.app.workspace_id

    def key(self, kid: str) -> KeyInfo | None:
        found: KeyInfo | None = self.cache.lookup("key", kid, lambda: self._store().key(kid))
        return found

    def mandate(self, mandate_id: str) -> MandateState | None:
        found: MandateState | None = self.cache.lookup(
            "mandate", mandate_id, lambda: self._store().mandate(mandate_id)
        )
        return found

    def principal_status(self, principal_id: str) -> str | None:
        found: str | None = self.cache.lookup(
            "status", principal_id, lambda: self._store().principal_status(principal_id)
        )
        return found

    def caller_id(self, caller: str | None) -> str | None:
        if caller is None:
            return None

        def load() -> str | None:
            row = principal_rows.find(self._store().conn, caller)
            return row.id if row else None

        found: str | None = self.cache.lookup("caller", caller, load)
        # An unknown caller can never be the subject; keep the raw value so it cannot match.
        return found if found is not None else f"unknown:{caller}"
