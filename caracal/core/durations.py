"""Human durations: `90s`, `30m`, `1h`, `7d`, or plain seconds."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from caracal.core.errors import ValidationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhdw]?)\s*$")
MAX_SECONDS = 10 * 365 * 86400


def parse_duration(text: str | int) -> int:
    """Return a positive number of seconds, or raise a ValidationError naming the input."""
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        match = _DURATION.fullmatch(str(text))
        if not match:
            raise ValidationError(
                f"Invalid duration {text!r}: use seconds or a number with s, m, h, d or w "
                "(e.g. 90s, 30m, 1h, 7d)."
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValidationError(f"Duration {text!r} must be greater than zero.")
    if seconds > MAX_SECONDS:
        raise ValidationError(f"Duration {text!r} is longer than ten years; use a shorter one.")
    return seconds


def format_duration(seconds: int | float) -> str:
    """Short human form: 3600 -> '1h', 5400 -> '1h30m', 45 -> '45s'."""
    remaining = int(seconds)
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts[:2])


def when(epoch: float | None) -> str:
    """An epoch time as UTC, for people (`-` for none)."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def relative(epoch: float, now: float | None = None) -> str:
    """`in 5m` or `3h ago`."""
    delta = float(epoch) - (time.time() if now is None else now)
    if delta >= 0:
        return f"in {format_duration(delta) if delta >= 1 else '0s'}"
    return f"{format_duration(-delta)} ago"
