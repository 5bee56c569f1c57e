"""The `caracal` command as a script runs it: single commands from start to exit, and bulk
issuance from a file. Each is a real child process on a workspace on the embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    ACTION,
    RESOURCE,
    Result,
    Sizes,
    installed_bytecode,
    median,
    populate,
    workspace,
)

PYTHON = sys.executable


def _caracal(*args: str, stdin: str | None = None) -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "caracal", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"caracal {' '.join(args)} failed: {proc.stderr.strip()}")


def _wall_ms(run: Callable[[], None], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_cli_latency(sizes: Sizes) -> list[Result]:
    """Start-to-exit time of single commands (`python -m caracal ...`) against `python -c pass`
    in the same run, interleaved: a read (`principal list --json`), a write (`mandate issue`)
    and `--help`. Targets: reads ≤ 200 ms, writes ≤ 250 ms."""
    name = "cli-latency"
    installed_bytecode()
    with workspace() as app:
        populate(app)
        commands: dict[str, Callable[[], None]] = {
            "python -c pass": lambda: _run([PYTHON, "-c", "pass"]),
            "caracal --help": lambda: _caracal("--help"),
            "principal list --json (read)": lambda: _caracal("principal", "list", "--json"),
            "mandate issue (write)": lambda: _caracal(
                "mandate",
                "issue",
                "--issuer",
                "alice",
                "--subject",
                "orch",
                "--resource",
                RESOURCE,
                "--action",
                ACTION,
                "--ttl",
                "30m",
            ),
        }
        samples: dict[str, list[float]] = {label: [] for label in commands}
        for run in commands.values():
            run()  # warm the page cache and the bytecode
        for _ in range(sizes.cli_runs):
            for label, run in commands.items():
                samples[label] += _wall_ms(run, 1)
    baseline = median(samples["python -c pass"])
    results = []
    targets = {"principal list --json (read)": 200.0, "mandate issue (write)": 250.0}
    for label, values in samples.items():
        result = Result(name, f"{label}, median", median(values) * 1e6, "ns", target=None)
        if label in targets:
            result.target = targets[label] * 1e6
            result.notes.append(f"{median(values) - baseline:.0f} ms above `python -c pass`")
        results.append(result)
    return results


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def bench_bulk_issue(sizes: Sizes) -> list[Result]:
    """`caracal mandate issue --from FILE --json`: one process issuing N mandates from JSON
    lines (one transaction and one signed ledger head per 500). Target ≥ 1,000 mandates/s,
    process start included."""
    name = "bulk-issue"
    line = json.dumps(
        {
            "issuer": "alice",
            "subject": "orch",
            "resources": [RESOURCE],
            "actions": [ACTION],
            "ttl": "30m",
        }
    )
    with workspace() as app, tempfile.TemporaryDirectory() as folder:
        populate(app)
        path = Path(folder) / "mandates.jsonl"
        path.write_text((line + "\n") * sizes.bulk_issue)
        started = time.perf_counter()
        out = subprocess.run(
            [PYTHON, "-m", "caracal", "mandate", "issue", "--from", str(path), "--json"],
            capture_output=True,
            text=True,
            check=False,
            env=os.environ.copy(),
        )
        seconds = time.perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(f"bulk issue failed: {out.stderr.strip()}")
        issued = sum(1 for row in out.stdout.splitlines() if '"token"' in row)
        if issued != sizes.bulk_issue:
            raise RuntimeError(f"bulk issue printed {issued} of {sizes.bulk_issue} mandates")
    return [
        Result(
            name,
            f"mandates/s over {sizes.bulk_issue:,} lines (wall, one process)",
            sizes.bulk_issue / seconds,
            "/s",
            target=1_000.0,
            higher_is_better=True,
        )
    ]


BENCHMARKS = {"cli-latency": bench_cli_latency, "bulk-issue": bench_bulk_issue}
