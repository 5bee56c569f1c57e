"""Prometheus text exposition of the runtime's own figures (no client library needed).

Each process keeps its figures in a `Metrics`; `snapshot()` turns them into plain data, and
`render()` writes the exposition of one snapshot, or of several merged (`merge`): with
`caracal serve --workers N`, /metrics answers for the whole service (see `metrics_share`)."""

from __future__ import annotations

import bisect
from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# Counters add up across processes; gauges are about the processes still running.
_COUNTER_MAPS = ("decisions", "http_errors", "listings")
_COUNTERS = (
    "latency_sum",
    "latency_count",
    "tools_shown",
    "anonymous_denials",
    "rate_limited",
    "ledger_commits",
    "cache_hits",
    "cache_misses",
    "version_reads",
)


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
        # Set by the runtime when several worker processes serve together.
        self.share: Any = None

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

    def snapshot(self) -> dict[str, Any]:
        """This process's figures as plain (JSON-able) data."""
        data: dict[str, Any] = {
            "decisions": dict(self.decisions),
            "buckets": list(self.buckets),
            "latency_sum": self.latency_sum,
            "latency_count": self.latency_count,
            "http_errors": {str(k): v for k, v in self.http_errors.items()},
            "listings": dict(self.listings),
            "tools_shown": self.tools_shown,
        }
        runtime = self._runtime
        if runtime is not None and getattr(runtime, "_authorizer", None) is not None:
            denials = runtime.authorizer.denials
            data["anonymous_denials"] = denials.counted
            data["rate_limited"] = denials.limited
        if self._batcher is not None:
            data["ledger_commits"] = self._batcher.batches
            data["gauges"] = {
                "ledger_lag": self._batcher.pending,
                "last_commit_seconds": self._batcher.last_commit_seconds,
            }
        versions = getattr(runtime, "_versions", None)
        if versions is not None:
            data["version_reads"] = versions.reads
        if self._cache is not None:
            data["cache_hits"] = self._cache.hits
            data["cache_misses"] = self._cache.misses
        data.setdefault("gauges", {})["workers"] = 1
        if runtime is not None:
            data["gauges"]["change_feed_up"] = 1 if runtime.redis_following else 0
        return data

    def render(self) -> str:
        if self.share is not None:
            return render(self.share.merged(self.snapshot()))
        return render(self.snapshot())


def merge(snapshots: list[dict[str, Any]], live: list[bool]) -> dict[str, Any]:
    """The service's figures from its processes' snapshots: counters summed over every
    process that ever served (a worker that stopped keeps what it counted), gauges over the
    live ones (the ledger lag summed, the last commit the slowest, the change feed followed
    only if every live worker follows it)."""
    out: dict[str, Any] = {"buckets": [0] * (len(BUCKETS) + 1)}
    for snap in snapshots:
        for name in _COUNTER_MAPS:
            into = out.setdefault(name, {})
            for key, count in (snap.get(name) or {}).items():
                into[key] = into.get(key, 0) + count
        for name in _COUNTERS:
            if name in snap:
                out[name] = out.get(name, 0) + snap[name]
        for i, count in enumerate(snap.get("buckets") or []):
            out["buckets"][i] += count
    gauges = [s.get("gauges") or {} for s, alive in zip(snapshots, live, strict=True) if alive]
    merged: dict[str, Any] = {"workers": len(gauges)}
    if any("ledger_lag" in g for g in gauges):
        merged["ledger_lag"] = sum(g.get("ledger_lag", 0) for g in gauges)
        merged["last_commit_seconds"] = max(g.get("last_commit_seconds", 0.0) for g in gauges)
    feeds = [g["change_feed_up"] for g in gauges if "change_feed_up" in g]
    if feeds:
        merged["change_feed_up"] = min(feeds)
    out["gauges"] = merged
    return out


def render(data: dict[str, Any]) -> str:
    out = [
        "# HELP caracal_decisions_total Authorisation decisions, by reason code.",
        "# TYPE caracal_decisions_total counter",
    ]
    for code, count in sorted(data.get("decisions", {}).items()):
        out.append(f'caracal_decisions_total{{reason_code="{code}"}} {count}')
    out += [
        "# HELP caracal_decision_seconds Time to decide and record a decision.",
        "# TYPE caracal_decision_seconds histogram",
    ]
    cumulative = 0
    for bound, count in zip((*BUCKETS, float("inf")), data["buckets"], strict=True):
        cumulative += count
        le = "+Inf" if bound == float("inf") else repr(bound)
        out.append(f'caracal_decision_seconds_bucket{{le="{le}"}} {cumulative}')
    out.append(f"caracal_decision_seconds_sum {data.get('latency_sum', 0.0):.6f}")
    out.append(f"caracal_decision_seconds_count {data.get('latency_count', 0)}")
    out += [
        "# HELP caracal_requests_rejected_total Requests refused before any decision.",
        "# TYPE caracal_requests_rejected_total counter",
    ]
    for status, count in sorted(data.get("http_errors", {}).items(), key=lambda i: int(i[0])):
        out.append(f'caracal_requests_rejected_total{{status="{status}"}} {count}')
    listings = {"shown": 0, "empty": 0, **data.get("listings", {})}
    out += [
        "# HELP caracal_mcp_tool_listings_total MCP tools/list answers (each in the ledger), "
        "by whether any tool was shown.",
        "# TYPE caracal_mcp_tool_listings_total counter",
        *(
            f'caracal_mcp_tool_listings_total{{result="{k}"}} {v}'
            for k, v in sorted(listings.items())
        ),
        "# HELP caracal_mcp_tools_shown_total Tools shown by MCP tools/list answers.",
        "# TYPE caracal_mcp_tools_shown_total counter",
        f"caracal_mcp_tools_shown_total {data.get('tools_shown', 0)}",
    ]
    if "anonymous_denials" in data:
        out += [
            "# HELP caracal_anonymous_denials_total Denials of tokens tied to no known key "
            "(recorded in aggregate).",
            "# TYPE caracal_anonymous_denials_total counter",
            f"caracal_anonymous_denials_total {data['anonymous_denials']}",
            "# HELP caracal_rate_limited_total Requests refused (429) for a client's budget "
            "of such denials.",
            "# TYPE caracal_rate_limited_total counter",
            f"caracal_rate_limited_total {data.get('rate_limited', 0)}",
        ]
    gauges = data.get("gauges") or {}
    if "ledger_commits" in data:
        out += [
            "# HELP caracal_ledger_lag_events Decisions waiting for their ledger commit.",
            "# TYPE caracal_ledger_lag_events gauge",
            f"caracal_ledger_lag_events {gauges.get('ledger_lag', 0)}",
            "# HELP caracal_ledger_commits_total Ledger transactions holding decisions.",
            "# TYPE caracal_ledger_commits_total counter",
            f"caracal_ledger_commits_total {data['ledger_commits']}",
            "# HELP caracal_ledger_last_commit_seconds Duration of the last ledger commit.",
            "# TYPE caracal_ledger_last_commit_seconds gauge",
            f"caracal_ledger_last_commit_seconds {gauges.get('last_commit_seconds', 0.0):.6f}",
        ]
    if "cache_hits" in data:
        out += [
            "# HELP caracal_state_cache_lookups_total Validation state lookups, by result.",
            "# TYPE caracal_state_cache_lookups_total counter",
            f'caracal_state_cache_lookups_total{{result="hit"}} {data["cache_hits"]}',
            f'caracal_state_cache_lookups_total{{result="miss"}} {data.get("cache_misses", 0)}',
        ]
    out += [
        "# HELP caracal_workers Worker processes whose figures this answer holds.",
        "# TYPE caracal_workers gauge",
        f"caracal_workers {gauges.get('workers', 1)}",
    ]
    if "version_reads" in data:
        out += [
            "# HELP caracal_authority_version_reads_total Reads of the store's authority "
            "version, each shared by the decisions that waited for it.",
            "# TYPE caracal_authority_version_reads_total counter",
            f"caracal_authority_version_reads_total {data['version_reads']}",
        ]
    if "change_feed_up" in gauges:
        out += [
            "# HELP caracal_change_feed_up Whether this replica follows the Redis change feed.",
            "# TYPE caracal_change_feed_up gauge",
            f"caracal_change_feed_up {gauges['change_feed_up']}",
        ]
    return "\n".join(out) + "\n"
