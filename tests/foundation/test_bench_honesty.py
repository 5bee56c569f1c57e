"""The load benchmark cannot flatter: a run whose answers were denials, or whose decisions were
not all recorded, fails instead of printing a rate; `--compare` orients every ratio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import Result, compare_text
from bench.runtime import _check_answers
from tests.support.runtime import serve

ROOT = Path(__file__).resolve().parents[2]


def _load(port: str, body: str) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            port,
            "--path",
            "/v1/authorize",
            "--connections",
            "4",
            "--seconds",
            "1",
            "--body",
            body,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    ).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def test_a_run_of_denials_fails_the_benchmark(home: Path) -> None:
    from tests.support.cli import run_cli

    assert run_cli("workspace", "create", "demo").code == 0
    with serve() as server:
        port = server.url.rsplit(":", 1)[1]
        figures = _load(port, json.dumps({"token": "x.y.z", "action": "a", "resource": "r"}))
    answered = int(figures["requests"])
    assert answered > 0 and figures["allowed"] == 0 and figures["non_2xx"] == answered
    with pytest.raises(RuntimeError, match="allowed"):
        _check_answers(figures, recorded=answered)


def test_the_ledger_must_hold_exactly_the_measured_answers() -> None:
    exact = {"requests": 100.0, "allowed": 100.0, "in_flight_at_end": 0.0}
    _check_answers(exact, recorded=100)
    for recorded in (99, 101):
        with pytest.raises(RuntimeError, match="ledger grew by"):
            _check_answers(exact, recorded=recorded)
    with_slack = {**exact, "in_flight_at_end": 16.0}
    _check_answers(with_slack, recorded=116)
    with pytest.raises(RuntimeError):
        _check_answers(with_slack, recorded=117)
    with pytest.raises(RuntimeError):
        _check_answers({**exact, "allowed": 99.0}, recorded=100)


def test_compare_says_better_or_worse_for_rates_and_durations() -> None:
    baseline = {
        ("a", "rate"): {"value": 1000.0},
        ("a", "time"): {"value": 2_000_000.0},
    }
    faster = Result("a", "rate", 1500.0, "/s", higher_is_better=True)
    slower = Result("a", "time", 4_000_000.0, "ns")
    assert compare_text(faster, baseline) == "1.50x better"
    assert compare_text(slower, baseline) == "0.50x worse"
    assert compare_text(Result("b", "new", 1.0, "ns"), baseline) == "(new)"
