"""A real `caracal serve` process on 127.0.0.1, and a small HTTP client for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        request = urllib.request.Request(
            self.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return Reply(reply.status, reply.read(), dict(reply.headers))
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), dict(error.headers))

    def authorize(self, **fields: Any) -> Reply:
        return self.request(
            "POST",
            "/v1/authorize",
            json.dumps(fields).encode(),
            {"Content-Type": "application/json"},
        )


@contextmanager
def serve(
    env: dict[str, str] | None = None, workspace: str | None = None, workers: int = 1
) -> Iterator[Server]:
    """`caracal serve` in a child process until /health answers; stopped afterwards."""
    port = free_port()
    merged = {**os.environ, **(env or {})}
    log = Path(merged["CARACAL_HOME"]) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "caracal"]
    if workspace:
        args += ["--workspace", workspace]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*args, "serve", "--port", str(port), "--workers", str(workers)],
            env=merged,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"caracal serve exited:\n{log.read_text()}")
            try:
                if server.request("GET", "/health").status in (200, 503):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"caracal serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
