"""tools/bench_tables.py writes bench/README.md's tables of figures from `python -m bench
--json` output, with when, on how many cores and under what load the run was made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.__main__ import _write_json
from bench.common import Result

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "bench_tables.py"

README = """# Figures

Text before.

<!-- bench-table:runtime -->
| an old | hand-typed table |
<!-- /bench-table:runtime -->

Text after.
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT
    )


def _sample(path: Path) -> None:
    """A results file as `python -m bench --json` writes it."""
    results = [
        Result(
            "runtime-authorize",
            "SQLite: requests/s",
            7123.4,
            "/s",
            target=6000.0,
            higher_is_better=True,
        ),
        Result("runtime-authorize", "SQLite: p99 latency", 12.5e6, "ns", target=10e6),
        Result("mcp-gate", "PostgreSQL: tool calls/s", 987.0, "/s", higher_is_better=True),
    ]
    run = {
        "date": "2026-12-06 08:00 UTC",
        "argv": ["--only", "runtime-authorize", "--json", "/tmp/run.json"],
        "loadavg": [3.5, 2.25, 1.0],
    }
    _write_json(path, False, results, run)


def test_the_block_is_rewritten_from_a_bench_json_file(tmp_path: Path) -> None:
    results, readme = tmp_path / "run.json", tmp_path / "README.md"
    _sample(results)
    readme.write_text(README)
    done = _run(str(results), "--block", "runtime", "--readme", str(readme))
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert text.startswith("# Figures\n\nText before.\n") and text.endswith("\nText after.\n")
    assert "hand-typed" not in text
    block = text.split("<!-- bench-table:runtime -->\n")[1].split("<!-- /bench-table")[0]
    head = block.splitlines()[0]
    assert "2026-12-06 08:00 UTC" in head and "(`python -m bench --only runtime-authorize`," in head
    assert f"on {json.loads(results.read_text())['cpus']} cores" in head
    assert "3.50 / 2.25 / 1.00 before the run" in head
    assert "| runtime-authorize | SQLite: requests/s | 7,123/s |  | ≥ 6,000/s | pass |" in block
    assert "| runtime-authorize | SQLite: p99 latency | 12.50 ms |  | ≤ 10.00 ms | miss |" in block
    assert "| mcp-gate | PostgreSQL: tool calls/s | 987/s |  |  |  |" in block
    # Rewriting again replaces the block, never adds a second one.
    assert _run(str(results), "--block", "runtime", "--readme", str(readme)).returncode == 0
    assert readme.read_text() == text


def test_a_missing_block_or_an_old_results_file_is_refused_untouched(tmp_path: Path) -> None:
    results, readme = tmp_path / "run.json", tmp_path / "README.md"
    _sample(results)
    readme.write_text(README)
    done = _run(str(results), "--block", "gateway", "--readme", str(readme))
    assert done.returncode == 1
    assert "no block 'gateway'" in done.stderr and "<!-- bench-table:gateway -->" in done.stderr
    old = json.loads(results.read_text())
    del old["date"]
    results.write_text(json.dumps(old))
    done = _run(str(results), "--block", "runtime", "--readme", str(readme))
    assert done.returncode == 1 and "python -m bench --json" in done.stderr
    assert readme.read_text() == README
