"""The runtime service under load: `POST /v1/authorize` from a separate process on 127.0.0.1.

`runtime-authorize`: `caracal serve` (one process, uvicorn, the ledger on: every decision is
group-committed before it is answered) on the embedded SQLite store, one mandate reused,
16 connections for 10 s (3 s with --quick) after a 2 s warm-up, driven by `wrk` when it is
installed (Debian package `wrk`), else by a small load generator in a separate Python process
(`bench/loadgen.py`). Target: ≥ 6,000 requests/s with p99 ≤ 10 ms. Extra: the same against
PostgreSQL (`CARACAL_BENCH_PG_DSN`, default postgresql://postgres@127.0.0.1:5432/postgres;
skipped with a note when unreachable). A run fails unless every measured answer was the
expected allow and the ledger grew by exactly the measured window's answers (wrk may leave one
request per connection in flight when it stops: up to 16 more); the ledger must still verify.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import Result, Sizes, temporary_home

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 16
READ = "provider:github:action:read"
REPOS = "provider:github:resource:repos"


def _cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "caracal", *args], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(f"caracal {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _workspace(store_url: str | None) -> str:
    create = ["workspace", "create", "bench"] + (["--store-url", store_url] if store_url else [])
    _cli(*create)
    _cli(
        "provider",
        "add",
        "github",
        "--base-url",
        "https://api.github.com",
        "--resource",
        "repos",
        "--action",
        "repos:read",
    )
    _cli("principal", "register", "--kind", "human", "--name", "alice")
    _cli("principal", "register", "--kind", "orchestrator", "--name", "orch")
    _cli(
        "policy",
        "create",
        "--principal",
        "orch",
        "--max-validity",
        "1h",
        "--resource",
        "provider:github:resource:*",
        "--action",
        "provider:github:action:*",
    )
    issued = _cli(
        "mandate",
        "issue",
        "--issuer",
        "alice",
        "--subject",
        "orch",
        "--ttl",
        "1h",
        "--resource",
        REPOS,
        "--action",
        READ,
        "--json",
    )
    return str(json.loads(issued)["token"])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(port: int, profile: Path | None = None) -> subprocess.Popen[bytes]:
    """`caracal serve`, once it answers `/health`; with `profile`, inside cProfile (its event
    loop thread), the statistics written there when it stops."""
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    process = subprocess.Popen(
        [sys.executable, *prefix, "-m", "caracal", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("caracal serve did not start") from None
            time.sleep(0.1)


def _wrk(url: str, body: str, seconds: int) -> dict[str, float]:
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    figures = wrk.run(
        url,
        script,
        seconds=seconds,
        connections=CONNECTIONS,
        accepted="status == 200 and body:sub(1, 15) == '{\"allowed\":true'",
    )
    figures["allowed"] = figures.pop("expected")
    return figures


def _loadgen(port: int, body: str, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            str(port),
            "--path",
            "/v1/authorize",
            "--connections",
            str(CONNECTIONS),
            "--seconds",
            str(seconds),
            "--body",
            body,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def _run(store_url: str | None, seconds: int) -> tuple[dict[str, float], str]:
    token = _workspace(store_url)
    body = json.dumps({"token": token, "action": READ, "resource": REPOS})
    port = _free_port()
    server = _start_server(port)
    try:
        driver = "wrk" if shutil.which("wrk") else "loadgen"
        load = _wrk if driver == "wrk" else None
        url = f"http://127.0.0.1:{port}/v1/authorize"
        warm = 2
        if load is not None:
            load(url, body, warm)
            before = _recorded_when_settled()
            figures = load(url, body, seconds)
        else:
            _loadgen(port, body, warm)
            before = _recorded_when_settled()
            figures = _loadgen(port, body, seconds)
        recorded = _recorded_when_settled() - before
    finally:
        server.terminate()
        server.wait(30)
    _check_answers(figures, recorded)
    _check_ledger()
    return figures, driver


def _recorded_when_settled() -> int:
    """The decisions in the ledger, once the count stops moving (the last answers of a load
    run are committed a moment after they are sent)."""
    from caracal.services.facade import Caracal
    from caracal.services.ledger_reads import LedgerFilter

    last = -1
    with Caracal.open("bench") as app:
        while True:
            count = app.ledger.count(LedgerFilter(types=["validation."]))
            if count == last:
                return count
            last = count
            time.sleep(0.3)


def _check_answers(figures: dict[str, float], recorded: int) -> None:
    """A run counts only if every answer it measured was the expected allow, and the ledger
    grew by exactly the answers of the measured window (plus at most the requests the client
    left in flight when it stopped): an all-denied or unrecorded run fails the benchmark."""
    answered = int(figures["requests"])
    if answered == 0 or figures["allowed"] != answered:
        raise RuntimeError(
            f"{answered} answers, {figures['allowed']:.0f} of them allowed: every measured "
            "answer must be the expected allow"
        )
    slack = int(figures["in_flight_at_end"])
    if not answered <= recorded <= answered + slack:
        raise RuntimeError(
            f"{answered} answers in the measured window but the ledger grew by {recorded} "
            f"(expected {answered} to {answered + slack})"
        )


def _check_ledger() -> None:
    """The ledger still verifies after the load."""
    from caracal.services.facade import Caracal

    with Caracal.open("bench") as app:
        report = app.ledger.verify()
        if not report.ok:
            raise RuntimeError(f"the ledger does not verify after the load: {report.problem}")


def _pg_dsn() -> str | None:
    if os.environ.get("CARACAL_BENCH_PG") == "off":
        return None
    dsn = os.environ.get("CARACAL_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            name = f"caracal_bench_{uuid.uuid4().hex[:8]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return None
    return dsn.rsplit("/", 1)[0] + f"/{name}"


def _drop(url: str) -> None:
    import psycopg

    admin, name = url.rsplit("/", 1)
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _results(label: str, figures: dict[str, float], driver: str, target: bool) -> list[Result]:
    notes = [
        f"{driver}, {CONNECTIONS} connections: {figures['requests']:.0f} answers, all allowed "
        f"and recorded; {figures['socket_errors']:.0f} socket errors"
    ]
    return [
        Result(
            "runtime-authorize",
            f"{label}: requests/s",
            figures["rate"],
            "/s",
            target=6000 if target else None,
            higher_is_better=True,
            notes=notes,
        ),
        Result(
            "runtime-authorize",
            f"{label}: p99 latency",
            figures["p99_ms"] * 1e6,
            "ns",
            target=10e6 if target else None,
        ),
        Result("runtime-authorize", f"{label}: p50 latency", figures["p50_ms"] * 1e6, "ns"),
    ]


def bench_runtime_authorize(sizes: Sizes) -> list[Result]:
    """`POST /v1/authorize` on `caracal serve` under 16 connections, every decision recorded:
    requests/s, p50 and p99, on SQLite and PostgreSQL."""
    seconds = 10 if sizes.backup_runs > 1 else 3
    out: list[Result] = []
    with temporary_home():
        figures, driver = _run(None, seconds)
        out += _results("SQLite", figures, driver, target=True)
    url = _pg_dsn()
    if url is None:
        print("    PostgreSQL unreachable: its figures are skipped", flush=True)
        return out
    try:
        with temporary_home():
            figures, driver = _run(url.replace("postgresql://", "postgresql+psycopg://"), seconds)
            out += _results("PostgreSQL", figures, driver, target=False)
    finally:
        _drop(url)
    return out


BENCHMARKS: dict[str, Any] = {"runtime-authorize": bench_runtime_authorize}
