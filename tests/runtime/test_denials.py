"""The aggregation of denials no key can be tied to, and the per-client budget, on a clock the
test moves (the runtime's own behaviour is in test_authorize.py)."""

from __future__ import annotations

import itertools

from caracal.services.denial_aggregator import DenialAggregator, DenialLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def aggregator(**limits: float) -> tuple[DenialAggregator, Clock]:
    clock = Clock()
    ids = (f"dec_{n}" for n in itertools.count())
    settings = DenialLimits(
        **{"interval_seconds": 10, "per_client_per_second": 2, "burst": 5, **limits}
    )  # type: ignore[arg-type]
    return DenialAggregator(settings, lambda: next(ids), clock=clock, monotonic=clock), clock


def test_one_event_per_reason_and_client_per_interval_with_the_count() -> None:
    denials, clock = aggregator(per_client_per_second=0)
    for _ in range(500):
        denials.count("TOKEN_MALFORMED", "10.0.0.1", {"action": "a"})
    denials.count("KEY_UNKNOWN", "10.0.0.1", {})
    denials.count("TOKEN_MALFORMED", "10.0.0.2", {})
    assert denials.due() == []  # the interval is not over
    clock.now += 10
    events = {(e.reason_code, e.payload["client"]): e.payload for e in denials.due()}
    assert {key: p["count"] for key, p in events.items()} == {
        ("TOKEN_MALFORMED", "10.0.0.1"): 500,
        ("KEY_UNKNOWN", "10.0.0.1"): 1,
        ("TOKEN_MALFORMED", "10.0.0.2"): 1,
    }
    assert events[("TOKEN_MALFORMED", "10.0.0.1")]["action"] == "a"
    assert denials.due(everything=True) == [] and denials.counted == 502


def test_a_client_over_its_budget_waits_and_is_counted() -> None:
    denials, clock = aggregator()
    for _ in range(5):
        assert denials.admit("10.0.0.1") is None
        denials.count("SIGNATURE_INVALID", "10.0.0.1", {})
    wait = denials.admit("10.0.0.1")
    assert wait is not None and 0 < wait <= 0.5
    assert denials.admit("10.0.0.2") is None  # another client is not affected
    clock.now += 0.5  # one more denial's worth at 2 per second
    assert denials.admit("10.0.0.1") is None
    events = denials.due(everything=True)
    counts = {(e.reason_code, e.payload["client"]): e.payload["count"] for e in events}
    assert counts == {("SIGNATURE_INVALID", "10.0.0.1"): 5, ("RATE_LIMITED", "10.0.0.1"): 1}
    assert denials.limited == 1


def test_the_limit_can_be_turned_off() -> None:
    denials, _ = aggregator(per_client_per_second=0)
    for _ in range(1000):
        assert denials.admit("10.0.0.1") is None
        denials.count("TOKEN_MISSING", "10.0.0.1", {})
