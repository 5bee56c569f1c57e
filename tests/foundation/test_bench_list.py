"""`python -m bench --list` names every benchmark `--only` accepts, each with a description."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_is_listed_with_a_description() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "--list"], capture_output=True, text=True, cwd=ROOT
    )
    assert listed.returncode == 0, listed.stderr
    lines = dict(line.split(maxsplit=1) for line in listed.stdout.splitlines())
    wrong = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "no-such-bench"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    accepted = wrong.stderr.rsplit("choose from ", 1)[1].strip().split(", ")
    assert sorted(lines) == sorted(accepted)
    assert all(text and text != "(no description)" for text in lines.values()), lines
