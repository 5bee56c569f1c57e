"""Small human formats for times and durations in command output."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from caracal.core.durations import format_duration


def when(epoch: float | int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def relative(epoch: float | int, now: float | None = None) -> str:
    delta = float(epoch) - (time.time() if now is None else now)
    if delta >= 0:
        return f"in {format_duration(delta) if delta >= 1 else '0s'}"
    return f"{format_duration(-delta)} ago"
