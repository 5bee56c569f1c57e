"""Two `caracal serve` replicas on one PostgreSQL and one Redis: a revocation made through
another process is honoured by both within a second, and losing Redis never means allowing."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.test_authorize import READ, REPOS, make_workspace
from tests.support.cli import run_cli
from tests.support.runtime import Server, free_port, serve

pytestmark = pytest.mark.postgres


class PrivateRedis:
    """A Redis server of the test's own, so that a test can stop it."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not start")
            time.sleep(0.05)

    def _answers(self) -> bool:
        ping = ["redis-cli", "-p", str(self.port), "ping"]
        return subprocess.run(ping, capture_output=True).stdout.strip() == b"PONG"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _following(server: Server) -> bool:
    lines = server.request("GET", "/metrics").body.decode().splitlines()
    return "caracal_change_feed_up 1" in lines


def _wait_following(*servers: Server) -> None:
    deadline = time.monotonic() + 10
    while not all(_following(s) for s in servers):
        if time.monotonic() > deadline:
            raise AssertionError("a replica never subscribed to the change feed")
        time.sleep(0.05)


def _denied_within(server: Server, token: str, seconds: float) -> float:
    started = time.monotonic()
    while True:
        reply = server.authorize(token=token, action=READ, resource=REPOS)
        elapsed = time.monotonic() - started
        if reply.status == 401:
            assert reply.json()["reason_code"] == "MANDATE_REVOKED"
            return elapsed
        assert elapsed < seconds, f"still allowed after {elapsed:.2f} s"
        time.sleep(0.01)


def test_a_revocation_reaches_every_replica_within_a_second(
    home: Path, pg_url: str, redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARACAL_STORE_URL", pg_url)
    monkeypatch.setenv("CARACAL_REDIS_URL", redis.url)
    token = make_workspace("demo")
    with serve() as one, serve() as two:
        _wait_following(one, two)
        # Both allow, and now hold the mandate in their caches.
        for server in (one, two):
            for _ in range(3):
                assert server.authorize(token=token, action=READ, resource=REPOS).status == 200
        mandate_id = one.authorize(token=token, action=READ, resource=REPOS).json()["mandate_id"]
        assert run_cli("mandate", "revoke", mandate_id, "--yes").code == 0
        delays = [_denied_within(s, token, 1.0) for s in (two, one)]
        assert max(delays) < 1.0
        # And it stays denied.
        for server in (one, two):
            assert server.authorize(token=token, action=READ, resource=REPOS).status == 401


def test_a_replica_that_loses_redis_reads_the_store_and_never_allows_a_revoked_mandate(
    home: Path, pg_url: str, redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARACAL_STORE_URL", pg_url)
    monkeypatch.setenv("CARACAL_REDIS_URL", redis.url)
    token = make_workspace("demo")
    with serve() as server:
        _wait_following(server)
        assert server.authorize(token=token, action=READ, resource=REPOS).status == 200
        redis.stop()
        deadline = time.monotonic() + 5
        while _following(server):
            assert time.monotonic() < deadline, "the replica never noticed Redis was gone"
            time.sleep(0.05)
        # No Redis to announce it: the replica must still see it, from the store.
        mandate_id = server.authorize(token=token, action=READ, resource=REPOS).json()["mandate_id"]
        assert run_cli("mandate", "revoke", mandate_id, "--yes").code == 0
        reply = server.authorize(token=token, action=READ, resource=REPOS)
        assert reply.status == 401 and reply.json()["reason_code"] == "MANDATE_REVOKED"
        assert server.request("GET", "/health").json()["failing"] == ["redis"]
