"""The host launcher: `caracal --help` on the host, and `caracal up` to every service healthy.

`host-help`: `python -m caracal --help` as a fresh process, wall time (target ≤ 300 ms).

`stack-up`: on a real Docker engine with the images present (the runtime image is built once,
untimed), `caracal up` as a fresh process until it returns, which it does only when postgres,
redis and the runtime are healthy (target ≤ 20 s). Two cases: *first* (new volumes: PostgreSQL
runs initdb, the runtime creates its workspace) and *again* (after `caracal down`: containers
are recreated, the data volumes are kept). Skipped with a note when no engine is reachable.
The stack runs under a unique project name and is purged afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.common import Result, Sizes, median, percentile, temporary_home

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {
    "CARACAL_BASE_IMAGE": "caracal-offline/base:bookworm",
    "CARACAL_POSTGRES_IMAGE": "caracal-offline/postgres:15-bookworm",
    "CARACAL_REDIS_IMAGE": "caracal-offline/redis:7-bookworm",
}


def _timed(args: list[str], env: dict[str, str], timeout: float = 900) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "caracal", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"caracal {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return elapsed


def bench_host_help(sizes: Sizes) -> list[Result]:
    """`caracal --help` as a new process, as an operator types it."""
    runs = 15 if sizes.backup_runs > 1 else 5
    env = dict(os.environ)
    _timed(["--help"], env)  # warm the file cache
    times = [_timed(["--help"], env) for _ in range(runs)]
    return [
        Result(
            "host-help",
            "`caracal --help`, new process",
            median(times) * 1e9,
            "ns",
            p90=percentile(times, 90) * 1e9,
            target=0.3e9,
        )
    ]


def _engine_ready() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        for variable, default in OFFLINE.items():
            client.images.get(os.environ.get(variable, default))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def bench_stack_up(sizes: Sizes) -> list[Result]:
    """`caracal up` until every service is healthy, with new volumes and after `down`."""
    problem = _engine_ready()
    if problem is not None:
        print(f"    no engine or images ({problem}): skipped", flush=True)
        return []
    runs = 3 if sizes.backup_runs > 1 else 1
    with temporary_home() as root:
        project = f"caracal-bench-{uuid.uuid4().hex[:8]}"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
        env.update({k: os.environ.get(k, v) for k, v in OFFLINE.items()})
        env.update(
            CARACAL_HOME=str(root / "home"),
            CARACAL_KEYRING="off",
            CARACAL_PROJECT_NAME=project,
            CARACAL_RUNTIME_PORT=str(port),
            CARACAL_RUNTIME_IMAGE=f"caracal-bench/runtime:{project}",
            CARACAL_DOCKER_COMPOSE_FILE=str(ROOT / "docker-compose.yml"),
        )
        first: list[float] = []
        again: list[float] = []
        try:
            _timed(["up"], env)  # builds the runtime image: untimed
            _timed(["reset", "--yes"], env)
            for _ in range(runs):
                first.append(_timed(["up"], env))
                _timed(["down"], env)
                again.append(_timed(["up"], env))
                _timed(["reset", "--yes"], env)
        finally:
            subprocess.run(
                [sys.executable, "-m", "caracal", "purge", "--force"],
                env=env,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                timeout=300,
            )
    return [
        Result(
            "stack-up",
            "`caracal up` to healthy, new volumes",
            median(first) * 1e9,
            "ns",
            p90=percentile(first, 90) * 1e9,
            target=20e9,
        ),
        Result(
            "stack-up",
            "`caracal up` to healthy, after `down`",
            median(again) * 1e9,
            "ns",
            p90=percentile(again, 90) * 1e9,
            target=20e9,
        ),
    ]


BENCHMARKS = {"host-help": bench_host_help, "stack-up": bench_stack_up}
