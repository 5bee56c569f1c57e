"""One runtime replica: the served workspace, the authorizer (validation over a cached view
of the store, decisions group-committed to the ledger), its metrics, and the Redis follower
that keeps the cache honest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from caracal.core.errors import CaracalError, IntegrityError
from caracal.server.metrics import Metrics
from caracal.services import change_feed
from caracal.services.cached_state import AuthorityCache
from caracal.services.facade import Caracal
from caracal.services.group_commit import InlineBatcher, LedgerBatcher
from caracal.services.ids import SequentialIds
from caracal.services.tools import McpServer
from caracal.services.validation import decision_event
from caracal.store.checkpoint import WalCheckpointer

log = logging.getLogger("caracal.server")


@dataclass(frozen=True, slots=True)
class Outcome:
    allowed: bool
    reason_code: str
    reason: str
    mandate_id: str | None
    decision_id: str | None
    subject_id: str | None


@contextlib.contextmanager
def lazy_connection(app: Caracal) -> Iterator[Callable[[], Any]]:
    """A factory for one store read connection, opened only if something asks for it (a fully
    cached decision touches none), and closed when the block ends."""
    with contextlib.ExitStack() as stack:
        opened: list[Any] = []

        def connection() -> Any:
            if not opened:
                opened.append(stack.enter_context(app.store.read()))
            return opened[0]

        yield connection


class LedgerUnavailable(Exception):
    """The decision could not be recorded, so it was not given."""

    def __init__(self, reason: str = "the decision could not be recorded, so it is not given"):
        super().__init__(reason)
        self.reason = reason


class Authorizer:
    def __init__(
        self,
        app: Caracal,
        cache: AuthorityCache,
        batcher: LedgerBatcher | InlineBatcher,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.cache = cache
        self.batcher = batcher
        self.metrics = metrics
        self.ids = SequentialIds("dec")
        # Why no decision may be given (the ledger was rolled back or tampered with); the
        # runtime clears it once the ledger checks out again.
        self.halted: str | None = None

    def _evaluate(
        self, token: str | None, action: str, resource: str, caller: str | None, intent: Any
    ) -> Any:
        with lazy_connection(self.app) as connection:
            state = self.cache.state(connection)
            try:
                caller_id = state.caller_id(caller)
            except Exception:
                caller_id = f"unknown:{caller}"  # fails the caller check: never an allow
            return self.app.validator.validate(
                token, action, resource, state, self.app.clock(), caller=caller_id, intent=intent
            )

    def mcp_server(self, name: str) -> McpServer:
        """The MCP server and its tools as the store holds them: cached behind the authority
        version like validation's reads (every provider or tool change moves it). Raises
        NotFoundError for a name that is no MCP server (never cached)."""
        with lazy_connection(self.app) as connection:
            found: McpServer = self.cache.read(
                "mcp_server", name, lambda: self.app.tools.mcp_server(name), connection
            )
            return found

    async def check(
        self, token: str | None, action: str, resource: str, caller: str | None = None
    ) -> Outcome:
        """The decision, not recorded: for showing what a mandate would allow."""
        d = self._evaluate(token, action, resource, caller, None)
        return Outcome(d.allowed, d.reason_code, d.reason, d.mandate_id, None, d.subject_id)

    async def decide(
        self,
        token: str | None,
        action: str,
        resource: str,
        caller: str | None = None,
        intent: Any = None,
        source: str = "http",
    ) -> Outcome:
        """Decide, record, and only then answer. Raises LedgerUnavailable when the decision
        could not be recorded (the caller must then refuse)."""
        started = time.perf_counter()
        if self.halted is not None:
            self.metrics.observe("LEDGER_UNAVAILABLE", time.perf_counter() - started)
            raise LedgerUnavailable(self.halted)
        d = self._evaluate(token, action, resource, caller, intent)
        decision_id = self.ids.new()
        event = decision_event(
            d, action, resource, caller, token, decision_id=decision_id, source=source
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def settle(seq: int | None, error: BaseException | None) -> None:
            if isinstance(error, IntegrityError):  # a rollback under us: stop deciding
                self.halted = error.message
            if not future.done():
                if error is not None:
                    future.set_exception(LedgerUnavailable())
                else:
                    future.set_result(seq or 0)

        def from_thread(seq: int | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(settle, seq, error)

        self.batcher.submit(event, settle if self.batcher.inline else from_thread)
        try:
            await future
        except LedgerUnavailable:
            self.metrics.observe("LEDGER_UNAVAILABLE", time.perf_counter() - started)
            raise
        self.metrics.observe(d.reason_code, time.perf_counter() - started)
        return Outcome(d.allowed, d.reason_code, d.reason, d.mandate_id, decision_id, d.subject_id)


class Runtime:
    """Created with the app; opened when the server starts, closed when it stops."""

    def __init__(self, workspace: str | None) -> None:
        self.workspace = workspace
        self.metrics = Metrics()
        self._caracal: Caracal | None = None
        self._authorizer: Authorizer | None = None
        self._batcher: LedgerBatcher | InlineBatcher | None = None
        self._follower: asyncio.Task[None] | None = None
        self._checkpointer: WalCheckpointer | None = None
        self.cache: AuthorityCache | None = None
        self.redis_following = False
        self._ledger_watch: asyncio.Task[None] | None = None

    @property
    def caracal(self) -> Caracal:
        if self._caracal is None:
            raise RuntimeError("the runtime is not started")
        return self._caracal

    @property
    def authorizer(self) -> Authorizer:
        if self._authorizer is None:
            raise RuntimeError("the runtime is not started")
        return self._authorizer

    async def start(self) -> None:
        # The ledger check at open is the runtime's own: a rolled-back store must not stop
        # the service from starting and saying why (503 and /health) until it is accepted.
        self._caracal = Caracal.open(self.workspace, actor="runtime", check_ledger=False)
        # Decisions commit on the event loop: no checkpoint may stall it.
        self._checkpointer = self._caracal.store.checkpoint_in_background()
        self.cache = AuthorityCache(self._caracal)
        if self._caracal.store.backend == "sqlite":
            self._batcher = InlineBatcher(self._caracal, asyncio.get_running_loop())
        else:
            self._batcher = LedgerBatcher(self._caracal)
        self._batcher.start()
        self.metrics.bind(self._batcher, self.cache, self)
        self._authorizer = Authorizer(self._caracal, self.cache, self._batcher, self.metrics)
        self._authorizer.halted = await asyncio.to_thread(self.ledger_problem)
        self._ledger_watch = asyncio.create_task(self._watch_ledger())
        if change_feed.redis_url(self._caracal):
            self._follower = asyncio.create_task(self._follow_changes())

    def ledger_problem(self) -> str | None:
        """Why the ledger cannot be trusted now (its head against the copies kept outside the
        store, and its newest event), or None."""
        try:
            self.caracal.check_ledger_head()
        except CaracalError as exc:
            return exc.message
        return None

    async def _watch_ledger(self) -> None:
        """Re-check the ledger: every 2 s while refusing (an operator may have accepted the
        rollback), every 10 s otherwise (a store rolled back between decisions)."""
        while True:
            halted = self.authorizer.halted
            await asyncio.sleep(2.0 if halted else 10.0)
            problem = await asyncio.to_thread(self.ledger_problem)
            if problem is None and halted is not None:
                self.caracal.ledger_heads.forget_commits()
                log.warning("the ledger checks out again; deciding")
            elif problem is not None and halted is None:
                log.error("refusing every decision: %s", problem)
            self.authorizer.halted = problem

    async def stop(self) -> None:
        if self._ledger_watch is not None:
            self._ledger_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ledger_watch
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follower
        if isinstance(self._batcher, InlineBatcher):
            self._batcher.close()
        elif self._batcher is not None:
            await asyncio.to_thread(self._batcher.close)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)
        if self._caracal is not None:
            self._caracal.close()

    async def _follow_changes(self) -> None:
        """Subscribe to the change feed; while subscribed the cache is on, otherwise off."""
        import redis.asyncio as aioredis

        assert self._caracal is not None and self.cache is not None
        url = change_feed.redis_url(self._caracal) or ""
        topic = change_feed.channel(self._caracal.workspace_id)
        while True:
            client = None
            try:
                client = aioredis.Redis.from_url(
                    url,
                    password=change_feed.redis_password(url),
                    socket_connect_timeout=1,
                    socket_keepalive=True,
                )
                pubsub = client.pubsub()
                await pubsub.subscribe(topic)
                self.cache.clear()
                self.cache.following = self.redis_following = True
                log.info("following authority changes on Redis")
                last_ping = time.monotonic()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self.cache.clear()
                        log.debug("change: %s", _describe(message.get("data")))
                    if time.monotonic() - last_ping > 1.0:
                        await pubsub.ping()
                        last_ping = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.redis_following:
                    log.warning("lost Redis (%s); reading the store on every decision", exc)
                self.cache.following = self.redis_following = False
                self.cache.clear()
                await asyncio.sleep(1.0)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()


def _describe(data: Any) -> str:
    try:
        parsed = json.loads(data)
        return f"{parsed.get('kind')} {len(parsed.get('ids') or [])} id(s)"
    except (TypeError, ValueError, AttributeError):
        return "unreadable message"
