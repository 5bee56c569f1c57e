"""One runtime replica: the served workspace, the authorizer (validation over a cached view
of the store, decisions group-committed to the ledger), its metrics, and the Redis follower
that keeps the cache honest."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caracal.core.errors import CaracalError, IntegrityError
from caracal.core.ledger import NewEvent
from caracal.server.metrics import Metrics
from caracal.server.metrics_share import INTERVAL as METRICS_INTERVAL
from caracal.server.metrics_share import MetricsShare
from caracal.services import change_feed
from caracal.services.cached_state import AuthorityCache
from caracal.services.denial_aggregator import ANONYMOUS, DenialAggregator, DenialLimits
from caracal.services.facade import Caracal
from caracal.services.group_commit import InlineBatcher, LedgerBatcher
from caracal.services.ids import SequentialIds
from caracal.services.tools import McpServer
from caracal.services.validation import decision_event
from caracal.services.version_reads import VersionReads

if TYPE_CHECKING:
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


class RateLimited(Exception):
    """The client spent its budget of anonymous denials: refused (429) before deciding."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many requests with unusable tokens; retry in {retry_after:.1f}s")
        self.retry_after = retry_after


class LedgerUnavailable(Exception):
    """The decision could not be recorded, so it was not given."""

    def __init__(self, reason: str = "the decision could not be recorded, so it is not given"):
        super().__init__(reason)
        self.reason = reason


class StoreUnreadable(LedgerUnavailable):
    """What a decision reads could not be read: no decision is given (503, as /health says)."""

    def __init__(self) -> None:
        super().__init__("the store cannot be read, so no decision is given")


class GivenVersionCache(AuthorityCache):
    """The authority cache, told the version to hold for a decision when that version was
    read off the event loop for it (`VersionReads`); otherwise it reads it itself."""

    given = False

    def _version_fresh(self) -> bool:
        return self.given or super()._version_fresh()


class Authorizer:
    def __init__(
        self,
        app: Caracal,
        cache: AuthorityCache,
        batcher: LedgerBatcher | InlineBatcher,
        metrics: Metrics,
        denials: DenialAggregator | None = None,
        versions: VersionReads | None = None,
    ) -> None:
        self.app = app
        self.cache = cache
        # On a networked store without the change feed: the version each decision needs,
        # read off the loop and shared by the decisions waiting for it.
        self.versions = versions if isinstance(cache, GivenVersionCache) else None
        self.batcher = batcher
        self.metrics = metrics
        self.ids = SequentialIds("dec")
        limits = app.config.runtime.anonymous_denials
        self.denials = denials or DenialAggregator(
            DenialLimits(limits.interval_seconds, limits.per_client_per_second, limits.burst),
            self.ids.new,
        )
        # Why no decision may be given (the ledger was rolled back or tampered with); the
        # runtime clears it once the ledger checks out again.
        self.halted: str | None = None

    async def fresh_version(self) -> str | None:
        """The authority version read after this call began, off the event loop, or None
        when the cache reads it itself (SQLite, or following the change feed). Raises
        StoreUnreadable when it cannot be read."""
        if self.versions is None or self.cache.following:
            return None
        try:
            return await self.versions.fresh()
        except Exception as exc:
            log.warning("cannot read the authority state: %s", exc)
            raise StoreUnreadable() from None

    @contextlib.contextmanager
    def _holding(self, version: str | None) -> Iterator[None]:
        """While evaluating: the cache holds `version` (when one was read for the call)."""
        if version is None or not isinstance(self.cache, GivenVersionCache):
            yield
            return
        self.cache.sync(version)
        self.cache.given = True
        try:
            yield
        finally:
            self.cache.given = False

    def _evaluate(
        self,
        token: str | None,
        action: str,
        resource: str,
        caller: str | None,
        intent: Any,
        version: str | None = None,
    ) -> Any:
        with lazy_connection(self.app) as connection, self._holding(version):
            try:
                state = self.cache.state(connection)
            except Exception as exc:
                log.warning("cannot read the authority state: %s", exc)
                raise StoreUnreadable() from None
            try:
                caller_id = state.caller_id(caller)
            except Exception:
                caller_id = f"unknown:{caller}"  # fails the caller check: never an allow
            return self.app.validator.validate(
                token, action, resource, state, self.app.clock(), caller=caller_id, intent=intent
            )

    def mcp_server(self, name: str, version: str | None = None) -> McpServer:
        """The MCP server and its tools as the store holds them: cached behind the authority
        version like validation's reads (every provider or tool change moves it). Raises
        NotFoundError for a name that is no MCP server (never cached)."""
        with lazy_connection(self.app) as connection, self._holding(version):
            found: McpServer = self.cache.read(
                "mcp_server", name, lambda: self.app.tools.mcp_server(name), connection
            )
            return found

    async def check(
        self, token: str | None, action: str, resource: str, caller: str | None = None
    ) -> Outcome:
        """The decision, not recorded: for showing what a mandate would allow."""
        d = self._evaluate(token, action, resource, caller, None, await self.fresh_version())
        return Outcome(d.allowed, d.reason_code, d.reason, d.mandate_id, None, d.subject_id)

    def admit(self, client: str | None) -> None:
        """Raises RateLimited when the client spent its budget of anonymous denials."""
        wait = self.denials.admit(client)
        if wait is not None:
            self.metrics.rejected(429)
            raise RateLimited(wait)

    async def decide(
        self,
        token: str | None,
        action: str,
        resource: str,
        caller: str | None = None,
        intent: Any = None,
        source: str = "http",
        client: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Outcome:
        """Decide, record, and only then answer. `detail` goes into the recorded event as it is
        (the gateway's method and path). Raises RateLimited for a client over its
        budget, LedgerUnavailable when the decision could not be recorded (the caller must
        then refuse). Denials about tokens tied to no known key are counted, not recorded one
        by one (see `denial_aggregator`)."""
        started = time.perf_counter()
        if self.halted is not None:
            self.metrics.observe("LEDGER_UNAVAILABLE", time.perf_counter() - started)
            raise LedgerUnavailable(self.halted)
        self.admit(client)
        try:
            version = await self.fresh_version()
        except StoreUnreadable:
            self.metrics.observe("LEDGER_UNAVAILABLE", time.perf_counter() - started)
            raise
        d = self._evaluate(token, action, resource, caller, intent, version)
        if d.reason_code in ANONYMOUS:
            decision_id = self.denials.count(
                d.reason_code, client, {"action": action, "resource": resource, "source": source}
            )
            self.metrics.observe(d.reason_code, time.perf_counter() - started)
            return Outcome(False, d.reason_code, d.reason, None, decision_id, None)
        decision_id = self.ids.new()
        event = decision_event(
            d,
            action,
            resource,
            caller,
            token,
            decision_id=decision_id,
            source=source,
            **(detail or {}),
        )
        try:
            await self.record(event)
        except LedgerUnavailable:
            self.metrics.observe("LEDGER_UNAVAILABLE", time.perf_counter() - started)
            raise
        self.metrics.observe(d.reason_code, time.perf_counter() - started)
        return Outcome(d.allowed, d.reason_code, d.reason, d.mandate_id, decision_id, d.subject_id)

    async def record(self, event: NewEvent) -> int:
        """Append one event through the group commit and wait for its commit (raises
        LedgerUnavailable when it could not be recorded)."""
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
        return await future

    async def record_listing(
        self,
        server: str,
        token: str | None,
        outcomes: list[Outcome],
        shown: int,
        client: str | None = None,
    ) -> str:
        """One ledger event per MCP tools/list (a listing tells the caller what its token may
        do, so it is a decision too): how many tools were shown of how many registered.
        Returns its decision id."""
        first = next((o for o in outcomes if o.allowed), outcomes[0] if outcomes else None)
        reason = "ALLOWED" if shown else (first.reason_code if first else "TOOL_UNKNOWN")
        self.metrics.listed(shown)
        if first is not None and first.reason_code in ANONYMOUS:
            return self.denials.count(first.reason_code, client, {"source": "mcp.tools_list"})
        decision_id = self.ids.new()
        payload: dict[str, Any] = {
            "decision_id": decision_id,
            "server": server,
            "registered": len(outcomes),
            "shown": shown,
        }
        if token:
            payload["token_sha256"] = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[
                :16
            ]
        await self.record(
            NewEvent(
                "mcp.tools_listed",
                payload,
                principal_id=first.subject_id if first else None,
                mandate_id=first.mandate_id if first else None,
                reason_code=reason,
            )
        )
        return decision_id

    def record_denials(self, *, everything: bool = False) -> None:
        """Hand the aggregated denials whose interval is over to the ledger."""
        for event in self.denials.due(everything=everything):
            self.batcher.submit(event, _logged_failure)


def _logged_failure(_seq: int | None, error: BaseException | None) -> None:
    if error is not None:
        log.warning("aggregated denials could not be recorded: %s", error)


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
        self._denial_flush: asyncio.Task[None] | None = None
        self._metrics_share: asyncio.Task[None] | None = None
        self._versions: VersionReads | None = None

    @property
    def ledger_writer(self) -> tuple[bool, int]:
        """Whether the ledger writer runs, and how many decisions wait for it."""
        if self._batcher is None:
            return False, 0
        return self._batcher.alive, self._batcher.pending

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
        if self._caracal.store.backend == "sqlite":
            self.cache = AuthorityCache(self._caracal)
            self._batcher = InlineBatcher(self._caracal, asyncio.get_running_loop())
        else:
            self.cache = GivenVersionCache(self._caracal)
            self._versions = VersionReads(self._caracal)
            self._batcher = LedgerBatcher(self._caracal)
        self._batcher.start()
        self.metrics.bind(self._batcher, self.cache, self)
        self._authorizer = Authorizer(
            self._caracal, self.cache, self._batcher, self.metrics, versions=self._versions
        )
        self._authorizer.halted = await asyncio.to_thread(self.ledger_problem)
        self._ledger_watch = asyncio.create_task(self._watch_ledger())
        self._denial_flush = asyncio.create_task(self._flush_denials())
        if change_feed.redis_url(self._caracal):
            self._follower = asyncio.create_task(self._follow_changes())
        self.metrics.share = MetricsShare.from_env()
        if self.metrics.share is not None:
            self._metrics_share = asyncio.create_task(self._share_metrics())

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

    async def _flush_denials(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.authorizer.record_denials()

    async def _share_metrics(self) -> None:
        """With several workers: this one's figures, for whichever answers /metrics."""
        share = self.metrics.share
        while True:
            share.write(self.metrics.snapshot())
            await asyncio.sleep(METRICS_INTERVAL)

    async def stop(self) -> None:
        if self._metrics_share is not None:
            self._metrics_share.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._metrics_share
        if self._denial_flush is not None:
            self._denial_flush.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._denial_flush
        if self._authorizer is not None:
            self._authorizer.record_denials(everything=True)
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
        if self._versions is not None:
            await asyncio.to_thread(self._versions.close)
        if self.metrics.share is not None:
            self.metrics.share.write(self.metrics.snapshot())
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
