"""Prometheus text exposition of the runtime's own figures (no client library needed)."""

from __future__ import annotations

import bisect
from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.decisions: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.http_errors: dict[int, int] = {}
        self.listings: dict[str, int] = {"shown": 0, "empty": 0}
        self.tools_shown = 0
        self._batcher: Any = None
        self._cache: Any = None
        self._runtime: Any = None

    def bind(self, batcher: Any, cache: Any, runtime: Any) -> None:
        self._batcher, self._cache, self._runtime = batcher, cache, runtime

    def observe(self, reason_code: str, seconds: float) -> None:
        self.decisions[reason_code] = self.decisions.get(reason_code, 0) + 1
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def rejected(self, status: int) -> None:
        self.http_errors[status] = self.http_errors.get(status, 0) + 1

    def listed(self, shown: int) -> None:
        """One MCP tools/list answered, showing `shown` tools."""
        self.listings["shown" if shown else "empty"] += 1
        self.tools_shown += shown

    def render(self) -> str:
        out = [
            "# HELP caracal_decisions_total Authorisation decisions, by reason code.",
            "# TYPE caracal_decisions_total counter",
        ]
        for code, count in sorted(self.decisions.items()):
            out.append(f'caracal_decisions_total{{reason_code="{code}"}} {count}')
        out += [
            "# HELP caracal_decision_seconds Time to decide and record a decision.",
            "# TYPE caracal_decision_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.buckets, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'caracal_decision_seconds_bucket{{le="{le}"}} {cumulative}')
        out.append(f"caracal_decision_seconds_sum {self.latency_sum:.6f}")
        out.append(f"caracal_decision_seconds_count {self.latency_count}")
        out += [
            "# HELP caracal_requests_rejected_total Requests refused before any decision.",
            "# TYPE caracal_requests_rejected_total counter",
        ]
        for status, count in sorted(self.http_errors.items()):
            out.append(f'caracal_requests_rejected_total{{status="{status}"}} {count}')
        out += [
            "# HELP caracal_mcp_tool_listings_total MCP tools/list answers (each in the ledger), "
            "by whether any tool was shown.",
            "# TYPE caracal_mcp_tool_listings_total counter",
            *(
                f'caracal_mcp_tool_listings_total{{result="{k}"}} {v}'
                for k, v in sorted(self.listings.items())
            ),
            "# HELP caracal_mcp_tools_shown_total Tools shown by MCP tools/list answers.",
            "# TYPE caracal_mcp_tools_shown_total counter",
            f"caracal_mcp_tools_shown_total {self.tools_shown}",
        ]
        if self._runtime is not None and getattr(self._runtime, "_authorizer", None) is not None:
            denials = self._runtime.authorizer.denials
            out += [
                "# HELP caracal_anonymous_denials_total Denials of tokens tied to no known key "
                "(recorded in aggregate).",
                "# TYPE caracal_anonymous_denials_total counter",
                f"caracal_anonymous_denials_total {denials.counted}",
                "# HELP caracal_rate_limited_total Requests refused (429) for a client's budget "
                "of such denials.",
                "# TYPE caracal_rate_limited_total counter",
                f"caracal_rate_limited_total {denials.limited}",
            ]
        if self._batcher is not None:
            out += [
                "# HELP caracal_ledger_lag_events Decisions waiting for their ledger commit.",
                "# TYPE caracal_ledger_lag_events gauge",
                f"caracal_ledger_lag_events {self._batcher.pending}",
                "# HELP caracal_ledger_commits_total Ledger transactions holding decisions.",
                "# TYPE caracal_ledger_commits_total counter",
                f"caracal_ledger_commits_total {self._batcher.batches}",
                "# HELP caracal_ledger_last_commit_seconds Duration of the last ledger commit.",
                "# TYPE caracal_ledger_last_commit_seconds gauge",
                f"caracal_ledger_last_commit_seconds {self._batcher.last_commit_seconds:.6f}",
            ]
        if self._cache is not None:
            out += [
                "# HELP caracal_state_cache_lookups_total Validation state lookups, by result.",
                "# TYPE caracal_state_cache_lookups_total counter",
                f'caracal_state_cache_lookups_total{{result="hit"}} {self._cache.hits}',
                f'caracal_state_cache_lookups_total{{result="miss"}} {self._cache.misses}',
            ]
        if self._runtime is not None:
            following = 1 if self._runtime.redis_following else 0
            out += [
                "# HELP caracal_change_feed_up Whether this replica follows the Redis change feed.",
                "# TYPE caracal_change_feed_up gauge",
                f"caracal_change_feed_up {following}",
            ]
        return "\n".join(out) + "\n"
