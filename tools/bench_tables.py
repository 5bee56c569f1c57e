#!/usr/bin/env python3
"""Rewrite a table of figures in bench/README.md from a `python -m bench --json` file.

    python3 tools/bench_tables.py RESULTS.json --block runtime     # rewrite that block
    python3 tools/bench_tables.py RESULTS.json --block runtime --readme OTHER.md

A block is the text between two marker lines in the README:

    <!-- bench-table:runtime -->
    ... (replaced whole) ...
    <!-- /bench-table:runtime -->

It becomes a line saying when the run was made, with what arguments, on how many cores and
under what load average (before and after the run), then the table of every figure in the
file: so a README figure is always one a run printed, never one typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"

# Figures read exactly as the benchmark prints them.
sys.path.insert(0, str(ROOT))
from bench.common import fmt  # noqa: E402


def _load(values: Any) -> str:
    if not isinstance(values, list) or len(values) < 2:
        return "unknown"
    return " / ".join(f"{v:.2f}" for v in values[:3])


def _target(result: dict[str, Any]) -> str:
    if result.get("target") is None:
        return ""
    sign = "≥" if result.get("higher_is_better") else "≤"
    return f"{sign} {fmt(result['target'], result['unit'])}"


def _shown_arguments(argv: list[str]) -> list[str]:
    """The run's arguments less where its files went (`--json`, `--compare`)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--json", "--compare"):
            skip = True
        elif not arg.startswith(("--json=", "--compare=")):
            shown.append(arg)
    return shown


def table(run: dict[str, Any]) -> str:
    """The block's text for one `--json` run."""
    missing = [k for k in ("date", "cpus", "results") if run.get(k) is None]
    if missing:
        raise ValueError(
            f"the JSON file has no {', '.join(missing)}: write it with a current "
            "`python -m bench --json FILE`"
        )
    argv = " ".join(_shown_arguments(run.get("argv") or []))
    lines = [
        f"Run of {run['date']} (`python -m bench {argv}`, {run.get('sizes', 'full')} sizes) on "
        f"{run['cpus']} cores; load average (1 / 5 / 15 min) "
        f"{_load(run.get('loadavg_before'))} before the run, "
        f"{_load(run.get('loadavg_after'))} after. {run.get('environment', '')}".rstrip(),
        "",
        "| benchmark | figure | median | p90 | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in run["results"]:
        status = r.get("status") or ""
        result = "" if status in ("-", "") else status.lower()
        lines.append(
            f"| {r['bench']} | {r['metric']} | {fmt(r['value'], r['unit'])} | "
            f"{fmt(r.get('p90'), r['unit'])} | {_target(r)} | {result} |"
        )
    return "\n".join(lines)


def rewrite(text: str, block: str, body: str) -> str:
    """`text` with the named block's content replaced by `body` (ValueError if the block's
    markers are missing)."""
    pattern = re.compile(
        rf"(<!-- bench-table:{re.escape(block)} -->\n)(.*?)(<!-- /bench-table:{re.escape(block)} -->)",
        re.S,
    )
    if not pattern.search(text):
        raise ValueError(
            f"no block {block!r}: add the lines `<!-- bench-table:{block} -->` and "
            f"`<!-- /bench-table:{block} -->` where the table goes"
        )
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a `python -m bench --json` file")
    parser.add_argument("--block", required=True, help="the block's name in the README")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    try:
        run = json.loads(args.results.read_text())
        body = table(run)
        args.readme.write_text(rewrite(args.readme.read_text(), args.block, body))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench_tables: {exc}", file=sys.stderr)
        return 1
    print(f"{args.readme}: block {args.block!r} rewritten from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
