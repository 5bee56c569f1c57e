"""One runtime replica's life: the served workspace opened when the server starts, the
authorizer assembled over the store's backend (`authorizer`, `recording`), its metrics, the
ledger watch, and the Redis follower that keeps the cache honest; all closed when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from caracal.core.errors import CaracalError
from caracal.server.authorizer import Authorizer, GivenVersionCache
from caracal.server.metrics import Metrics
from caracal.server.metrics_share import INTERVAL as METRICS_INTERVAL
from caracal.server.metrics_share import MetricsShare
from caracal.services import change_feed
from caracal.services.cached_state import AuthorityCache
from caracal.services.facade import Caracal
from caracal.services.group_commit import InlineBatcher, LedgerBatcher
from caracal.services.version_reads import VersionReads

if TYPE_CHECKING:
    from caracal.store.checkpoint import WalCheckpointer

log = logging.getLogger("caracal.server")


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
