"""wrk, driven the same way by every HTTP benchmark: the benchmark's own Lua (method, body,
headers, perhaps `request()`), optionally a per-thread count of the answers it expects, and
one `RESULT` line that `run` reads back into figures."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

# Each thread counts the answers the benchmark expects; done() adds the threads' counts.
_COUNTING = (
    "local threads = {}\n"
    "function setup(thread) table.insert(threads, thread) end\n"
    "function init(args) expected = 0 end\n"
    "function response(status, headers, body)\n"
    "  if ACCEPTED then\n"
    "    expected = expected + 1\n"
    "  end\n"
    "end\n"
)
_SUM = 'for _, t in ipairs(threads) do ok = ok + t:get("expected") end\n'
_DONE = (
    "done = function(summary, latency, requests)\n"
    "  local ok = 0\n"
    "  SUM"
    '  io.write(string.format("RESULT %d %d %d %d %f %f %d\\n", summary.requests,'
    " summary.errors.status, summary.errors.connect + summary.errors.read +"
    " summary.errors.write + summary.errors.timeout, summary.duration,"
    " latency:percentile(50), latency:percentile(99), ok))\n"
    "end\n"
)
_RESULT = re.compile(r"RESULT (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)")


def run(
    url: str, script: str, *, seconds: float, connections: int, accepted: str | None = None
) -> dict[str, float]:
    """`wrk -t2` against `url` for `seconds` with `script`; `accepted` is a Lua condition on
    `status` and `body` that marks an expected answer (counted in "expected")."""
    lua = script.rstrip("\n") + "\n"
    if accepted is not None:
        lua += _COUNTING.replace("ACCEPTED", accepted)
    lua += _DONE.replace("SUM", _SUM if accepted is not None else "")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(lua)
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "-s", file.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(file.name)
    found = _RESULT.search(out)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, status_errors, socket_errors, duration_us, p50, p99, expected = found.groups()
    return {
        "requests": float(requests),
        "expected": float(expected),
        # wrk stops with a request in flight on each connection at most: the server may have
        # decided (and recorded) those without wrk counting the answer.
        "in_flight_at_end": float(connections),
        "non_2xx": float(status_errors),
        "socket_errors": float(socket_errors),
        "rate": float(requests) / (float(duration_us) / 1e6),
        "p50_ms": float(p50) / 1000,
        "p99_ms": float(p99) / 1000,
    }
