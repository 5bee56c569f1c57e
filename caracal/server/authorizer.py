"""The authorizer: each decision validated over a cached view of the store (the authority
cache, told the version to hold when it was read off the event loop), the client's budget of
anonymous denials checked first, and the decision recorded before it is answered."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from caracal.server.metrics import Metrics
from caracal.server.outcomes import LedgerUnavailable, Outcome, RateLimited, StoreUnreadable
from caracal.server.recording import DecisionRecorder
from caracal.services.cached_state import AuthorityCache
from caracal.services.denial_aggregator import ANONYMOUS, DenialAggregator, DenialLimits
from caracal.services.facade import Caracal
from caracal.services.group_commit import InlineBatcher, LedgerBatcher
from caracal.services.ids import SequentialIds
from caracal.services.tools import McpServer
from caracal.services.validation import decision_event
from caracal.services.version_reads import VersionReads

log = logging.getLogger("caracal.server")


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


class GivenVersionCache(AuthorityCache):
    """The authority cache, told the version to hold for a decision when that version was
    read off the event loop for it (`VersionReads`); otherwise it reads it itself."""

    given = False

    def _version_fresh(self) -> bool:
        return self.given or super()._version_fresh()


class Authorizer(DecisionRecorder):
    """Decides for the handlers over the authority cache; what it decides, it records
    (`DecisionRecorder`) before answering."""

    def __init__(
        self,
        app: Caracal,
        cache: AuthorityCache,
        batcher: LedgerBatcher | InlineBatcher,
        metrics: Metrics,
        denials: DenialAggregator | None = None,
        versions: VersionReads | None = None,
    ) -> None:
        ids = SequentialIds("dec")
        limits = app.config.runtime.anonymous_denials
        denials = denials or DenialAggregator(
            DenialLimits(limits.interval_seconds, limits.per_client_per_second, limits.burst),
            ids.new,
        )
        super().__init__(batcher, metrics, ids, denials)
        self.app = app
        self.cache = cache
        # On a networked store without the change feed: the version each decision needs,
        # read off the loop and shared by the decisions waiting for it.
        self.versions = versions if isinstance(cache, GivenVersionCache) else None

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
        admitted: bool = False,
    ) -> Outcome:
        """Decide, record, and only then answer. `detail` goes into the recorded event as it is
        (the gateway's method and path). Raises RateLimited for a client over its budget
        (checked here unless the caller has checked it for this request with `admit`:
        `admitted`), LedgerUnavailable when the decision could not be recorded (the caller
        must then refuse). Denials about tokens tied to no known key are counted, not recorded one by
        one (see `denial_aggregator`)."""
        started = time.perf_counter()
        if self.halted is not None:
            self.metrics.observe("LEDGER_UNAVAILABLE", time.perf_counter() - started)
            raise LedgerUnavailable(self.halted)
        if not admitted:
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
