"""Decisions into the ledger: each event through the group commit, answered only once it is
committed; MCP listings as decisions; aggregated anonymous denials when their interval is over.
A rollback seen under a commit halts deciding (`halted`) until the ledger checks out again."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from caracal.core.errors import IntegrityError
from caracal.core.ledger import NewEvent
from caracal.server.metrics import Metrics
from caracal.server.outcomes import LedgerUnavailable, Outcome
from caracal.services.denial_aggregator import ANONYMOUS, DenialAggregator
from caracal.services.group_commit import InlineBatcher, LedgerBatcher
from caracal.services.ids import SequentialIds

log = logging.getLogger("caracal.server")


class DecisionRecorder:
    """The ledger side of the authorizer (its base class, so that `record` costs a decision no
    extra call)."""

    def __init__(
        self,
        batcher: LedgerBatcher | InlineBatcher,
        metrics: Metrics,
        ids: SequentialIds,
        denials: DenialAggregator,
    ) -> None:
        self.batcher = batcher
        self.metrics = metrics
        self.ids = ids
        self.denials = denials
        # Why no decision may be given (the ledger was rolled back or tampered with); the
        # runtime clears it once the ledger checks out again.
        self.halted: str | None = None

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
