"""What asking the runtime for a decision comes to: the outcome, or why none was given. The
handlers (`/v1/authorize`, the MCP gate, the provider gateway) turn these into answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    allowed: bool
    reason_code: str
    reason: str
    mandate_id: str | None
    decision_id: str | None
    subject_id: str | None


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
