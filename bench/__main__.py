"""`python -m bench [--quick] [--only NAME ...]`: run the benchmarks and print a summary."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    FULL,
    QUICK,
    Result,
    enable_profiling,
    fmt,
    print_table,
    profile_reports,
    timer_overhead_ns,
)


def describe(benchmark: object, width: int = 100) -> str:
    """The first paragraph of a benchmark's docstring, on one line (cut at `width`)."""
    doc = (getattr(benchmark, "__doc__", None) or "").strip().split("\n\n")[0]
    text = " ".join(doc.split())
    return (text if len(text) <= width else text[: width - 1] + "…") or "(no description)"


def _parser(names: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Caracal benchmarks (embedded SQLite store). Figures are medians.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke test (well under a minute)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(names)}",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results here")
    parser.add_argument(
        "--compare",
        metavar="BASELINE",
        type=Path,
        help="a --json file of an earlier run: print each figure's ratio against it",
    )
    parser.add_argument(
        "--profile",
        choices=("cprofile", "pyinstrument"),
        help="profile the measured loops and print the profiles (figures are then inflated)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is missed"
    )
    return parser


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _environment() -> str:
    import cryptography
    import sqlalchemy

    return (
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}, cryptography {cryptography.__version__}"
    )


def _write_json(
    path: Path,
    quick: bool,
    results: list[Result],
    started: dict[str, Any] | None = None,
) -> None:
    path.write_text(
        json.dumps(
            {
                "sizes": "quick" if quick else "full",
                "environment": _environment(),
                "load_after": _load(),
                # For tools/bench_tables.py: when, on how many cores, under what load.
                "date": (started or {}).get("date"),
                "argv": (started or {}).get("argv"),
                "cpus": os.cpu_count(),
                "loadavg_before": (started or {}).get("loadavg"),
                "loadavg_after": _loadavg(),
                "results": [r.to_dict() for r in results],
            },
            indent=2,
        )
        + "\n"
    )


def _baseline(path: Path) -> dict[tuple[str, str], dict[str, object]]:
    data = json.loads(path.read_text())
    return {(r["bench"], r["metric"]): r for r in data["results"]}


def _benchmarks() -> dict[str, Any]:
    from bench.authority import BENCHMARKS as AUTHORITY
    from bench.backup import BENCHMARKS as BACKUP
    from bench.cli import BENCHMARKS as CLI
    from bench.flow import BENCHMARKS as FLOW
    from bench.gateway import BENCHMARKS as GATEWAY
    from bench.mcp_gate import BENCHMARKS as MCP_GATE
    from bench.runtime import BENCHMARKS as RUNTIME
    from bench.stack import BENCHMARKS as STACK

    return {**AUTHORITY, **CLI, **BACKUP, **FLOW, **STACK, **RUNTIME, **MCP_GATE, **GATEWAY}


def main(argv: list[str] | None = None) -> int:
    BENCHMARKS = _benchmarks()
    names = list(BENCHMARKS)
    args = _parser(names).parse_args(argv)
    if args.list:
        for name in names:
            print(f"{name:18} {describe(BENCHMARKS[name])}")
        return 0
    selected = names
    if args.only:
        unknown = [n for n in args.only if n not in BENCHMARKS]
        if unknown:
            print(
                f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(names)}",
                file=sys.stderr,
            )
            return 2
        selected = [n for n in names if n in args.only]
    try:
        baseline = _baseline(args.compare) if args.compare else None
    except (OSError, ValueError, KeyError) as exc:
        print(f"--compare {args.compare}: not a `--json` file of a run ({exc})", file=sys.stderr)
        return 2
    if args.profile:
        enable_profiling(args.profile)
    sizes = QUICK if args.quick else FULL
    run = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "argv": sys.argv[1:] if argv is None else argv,
        "loadavg": _loadavg(),
    }

    print(f"Caracal benchmarks ({'quick' if args.quick else 'full'} sizes)")
    print(_environment())
    print(f"load average before: {_load()}; other work on the machine skews every figure")
    print(f"timer overhead per sample: {fmt(timer_overhead_ns(), 'ns')} (included in figures)")
    if args.profile:
        print(f"profiling with {args.profile}: figures are inflated by the profiler")
    print()

    results: list[Result] = []
    started = time.perf_counter()
    for name in selected:
        t0 = time.perf_counter()
        print(f"[{name}] running ...", flush=True)
        found = BENCHMARKS[name](sizes)
        for r in found:
            p90 = f" (p90 {fmt(r.p90, r.unit)})" if r.p90 is not None else ""
            target = f"  target {r.target_text}: {r.status}" if r.target is not None else ""
            print(f"    {r.metric}: {fmt(r.value, r.unit)}{p90}{target}")
            for note in r.notes:
                print(f"      note: {note}")
        print(f"    ({time.perf_counter() - t0:.1f} s)", flush=True)
        results.extend(found)

    print()
    print_table(results, baseline=baseline)
    missed = [r for r in results if r.status == "MISS"]
    print()
    print(
        f"{len(results)} figures, {sum(r.target is not None for r in results)} with targets, "
        f"{len(missed)} missed; {time.perf_counter() - started:.0f} s in all; "
        f"load average after: {_load()}."
    )

    for label, text in profile_reports():
        print(f"\n==== profile: {label} ====\n{text}")

    if args.json:
        _write_json(args.json, args.quick, results, run)
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
