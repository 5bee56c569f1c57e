"""The MCP gate beside hostile upstreams (a trickling event stream, a huge tools/list, nested
JSON, a hanging initialize): each answers the caller with a JSON-RPC error in bounded time,
a healthy server's calls keep succeeding at their usual latency, and `caracal serve` keeps its
memory. One `caracal serve` for the module, so its peak memory covers every attack here."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml

from tests.runtime.hostile_upstream import Hostile, running_hostile_upstream
from tests.runtime.test_front import peak_rss_mb
from tests.runtime.upstream import Upstream, running_upstream
from tests.support.cli import Result, run_cli
from tests.support.runtime import Server, serve

pytestmark = pytest.mark.timeout(300)

UPSTREAM_FAILED = -32011
HOSTILE = ("trickle", "slow", "huge", "nested", "hang")
PATHS = {
    "trickle": "trickle",
    "slow": "trickle",
    "huge": "huge",
    "nested": "nested",
    "hang": "hang",
}
# Per-server limits from config.yaml: short deadlines keep the test short (the defaults,
# 30 s and 10 s, are the same code).
LIMITS = {
    "trickle": {"call_timeout_seconds": 3},
    "hang": {"initialize_timeout_seconds": 2},
}


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@dataclass
class World:
    server: Server
    healthy: Upstream
    hostile: Hostile
    token: str
    latencies: list[float] = field(default_factory=list)

    def url(self, server: str) -> str:
        return f"{self.server.url}/mcp/{server}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("hostile") / "home"
    with pytest.MonkeyPatch.context() as env, contextlib.ExitStack() as stack:
        env.setenv("CARACAL_HOME", str(home))
        env.setenv("CARACAL_KEYRING", "off")
        for var in ("CARACAL_WORKSPACE", "CARACAL_STORE_URL", "CARACAL_MASTER_KEY"):
            env.delenv(var, raising=False)
        env.delenv("CARACAL_REDIS_URL", raising=False)
        healthy = stack.enter_context(running_upstream())
        hostile = stack.enter_context(running_hostile_upstream())
        ok(run_cli("workspace", "create", "gate"))
        ok(run_cli("provider", "add", "docs", "--service-type", "mcp", "--base-url",
                   healthy.url, "--resource", "files", "--action", "files:read"))  # fmt: skip
        ok(run_cli("tool", "register", "read_doc", "--server", "docs",
                   "--resource", "provider:docs:resource:files",
                   "--action", "provider:docs:action:read"))  # fmt: skip
        for name in HOSTILE:
            ok(run_cli("provider", "add", name, "--service-type", "mcp", "--base-url",
                       hostile.url(PATHS[name]), "--resource", "files",
                       "--action", "files:read"))  # fmt: skip
            ok(run_cli("tool", "register", f"{name}_poke", "--server", name,
                       "--resource", f"provider:{name}:resource:files",
                       "--action", f"provider:{name}:action:read"))  # fmt: skip
        ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
        ok(run_cli("principal", "register", "--kind", "worker", "--name", "agent"))
        scopes: list[str] = []
        for name in ("docs", *HOSTILE):
            scopes += ["--resource", f"provider:{name}:resource:files"]
            scopes += ["--action", f"provider:{name}:action:read"]
        ok(run_cli("policy", "create", "--principal", "agent", "--max-validity", "1h", *scopes))
        issued = ok(run_cli("mandate", "issue", "--issuer", "alice", "--subject", "agent",
                            "--ttl", "30m", *scopes, "--json"))  # fmt: skip
        config = home / "workspaces" / "gate" / "config.yaml"
        data = yaml.safe_load(config.read_text())
        data.setdefault("runtime", {})["mcp_servers"] = LIMITS
        config.write_text(yaml.safe_dump(data))
        server = stack.enter_context(serve())
        world = World(server, healthy, hostile, str(issued.json()["token"]))
        yield world
        print(
            f"\nHOSTILE caracal serve peak RSS {peak_rss_mb(server):.0f} MB; healthy calls "
            f"during the attacks: {len(world.latencies)}, median "
            f"{statistics.median(world.latencies) * 1000:.0f} ms, worst "
            f"{max(world.latencies) * 1000:.0f} ms"
        )


def _call(tool: str, request_id: int = 1) -> dict[str, Any]:
    params = {"name": tool, "arguments": {"path": "a.txt"} if tool == "read_doc" else {}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def _post(
    http: httpx.AsyncClient, world: World, server: str, message: dict[str, Any]
) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    reply = await http.post(
        world.url(server),
        json=message,
        headers={"Authorization": f"Bearer {world.token}"},
    )
    return time.monotonic() - started, reply


async def _healthy_calls(world: World, stop: asyncio.Event, http: httpx.AsyncClient) -> int:
    """Healthy calls one after another until `stop`; each must succeed."""
    done = 0
    while not stop.is_set():
        seconds, reply = await _post(http, world, "docs", _call("read_doc", done))
        assert reply.status_code == 200, reply.text
        assert reply.json()["result"]["content"][0]["text"] == "contents of a.txt", reply.text
        world.latencies.append(seconds)
        done += 1
        await asyncio.sleep(0.05)
    return done


async def _beside_healthy(world: World, attack: Any) -> Any:
    """Run `attack` while healthy calls go on; return what it returned."""
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        healthy = asyncio.create_task(_healthy_calls(world, stop, http))
        try:
            result = await attack(http)
        finally:
            stop.set()
        assert await healthy > 0
    return result


def _error_code(reply: httpx.Response) -> int:
    assert reply.status_code == 200, reply.text
    return int(reply.json()["error"]["code"])


def test_a_healthy_server_answers_before_the_attacks(world: World) -> None:
    async def run() -> list[float]:
        async with httpx.AsyncClient(timeout=30) as http:
            return [(await _post(http, world, "docs", _call("read_doc", i)))[0] for i in range(20)]

    baseline = asyncio.run(run())
    print(f"\nHOSTILE healthy baseline median {statistics.median(baseline) * 1000:.0f} ms")


def test_trickling_streams_cannot_hold_calls_past_their_deadline(world: World) -> None:
    async def attack(http: httpx.AsyncClient) -> list[tuple[float, httpx.Response]]:
        calls = [_post(http, world, "trickle", _call("trickle_poke", i)) for i in range(200)]
        return list(await asyncio.gather(*calls))

    started = time.monotonic()
    replies = asyncio.run(_beside_healthy(world, attack))
    assert all(_error_code(reply) == UPSTREAM_FAILED for _, reply in replies)
    # The server's share is 16 in flight and 32 waiting: the rest are refused at once, and
    # none waits past its 3 s deadline (with room for a loaded machine).
    assert max(seconds for seconds, _ in replies) < 15
    assert sum(1 for seconds, _ in replies if seconds < 2) >= 100
    assert time.monotonic() - started < 30
    # The breaker is open now: one more call is refused at once, and the streams are closed.
    seconds, reply = asyncio.run(_one(world, "trickle", "trickle_poke"))
    assert _error_code(reply) == UPSTREAM_FAILED and seconds < 2, reply.text
    assert "refused" in reply.json()["error"]["message"]
    _eventually(lambda: world.hostile.open_streams == 0, "the trickling streams were let go")


async def _one(world: World, server: str, tool: str) -> tuple[float, httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as http:
        return await _post(http, world, server, _call(tool))


def _eventually(check: Any, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.1)


def test_a_caller_that_goes_away_cancels_its_upstream_call(world: World) -> None:
    """`slow` has the default deadline (30 s); the callers give up after 1 s."""

    async def attack(http: httpx.AsyncClient) -> None:
        async with httpx.AsyncClient(timeout=1) as impatient:
            calls = [_post(impatient, world, "slow", _call("slow_poke", i)) for i in range(10)]
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, httpx.TimeoutException) for r in results), results
        await asyncio.to_thread(
            _eventually, lambda: world.hostile.open_streams == 0, "streams closed", 10
        )

    asyncio.run(_beside_healthy(world, attack))


def test_a_huge_tool_listing_is_refused_within_budget(world: World) -> None:
    async def attack(http: httpx.AsyncClient) -> list[tuple[float, httpx.Response]]:
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        return list(await asyncio.gather(*(_post(http, world, "huge", listing) for _ in range(8))))

    for seconds, reply in asyncio.run(_beside_healthy(world, attack)):
        assert _error_code(reply) == UPSTREAM_FAILED
        assert "over" in reply.json()["error"]["message"], reply.text
        assert seconds < 20
    assert peak_rss_mb(world.server) < 300


def test_nested_json_from_the_upstream_is_a_json_rpc_error(world: World) -> None:
    async def attack(http: httpx.AsyncClient) -> list[tuple[float, httpx.Response]]:
        calls = [_post(http, world, "nested", _call("nested_poke", i)) for i in range(4)]
        return list(await asyncio.gather(*calls))

    for _, reply in asyncio.run(_beside_healthy(world, attack)):
        assert _error_code(reply) == UPSTREAM_FAILED, reply.text
    assert "Traceback" not in world.server.log.read_text()


def test_a_hanging_initialize_fails_every_caller_in_time(world: World) -> None:
    async def attack(http: httpx.AsyncClient) -> list[tuple[float, httpx.Response]]:
        calls = [_post(http, world, "hang", _call("hang_poke", i)) for i in range(20)]
        return list(await asyncio.gather(*calls))

    replies = asyncio.run(_beside_healthy(world, attack))
    for seconds, reply in replies:
        assert _error_code(reply) == UPSTREAM_FAILED, reply.text
        # 2 s to initialize, 2 s more at most for a caller waiting on another's initialize.
        assert seconds < 12, seconds


def test_past_their_share_other_requests_get_503_and_decisions_still_answer(
    world: World,
) -> None:
    """A second server on the same workspace, with a share of 4 requests in flight for
    everything but /health and /v1/authorize; 8 calls to `slow` hold them."""
    with serve({"CARACAL_MAX_OTHER_REQUESTS": "4"}) as small:
        shared = World(small, world.healthy, world.hostile, world.token)

        async def run() -> list[Any]:
            async with httpx.AsyncClient(timeout=4) as http:
                calls = [
                    asyncio.create_task(_post(http, shared, "slow", _call("slow_poke", i)))
                    for i in range(4)
                ]
                await asyncio.to_thread(
                    _eventually, lambda: world.hostile.open_streams >= 4, "4 calls in flight"
                )
                _, busy = await _post(http, shared, "docs", _call("read_doc"))
                health = await http.get(f"{small.url}/health")
                decision = await http.post(
                    f"{small.url}/v1/authorize",
                    json={"token": world.token, "action": "provider:docs:action:read",
                          "resource": "provider:docs:resource:files"},
                )  # fmt: skip
                results = [busy, health, decision]
                for call in calls:
                    call.cancel()
                await asyncio.gather(*calls, return_exceptions=True)
                return results

        busy, health, decision = asyncio.run(run())
    assert busy.status_code == 503 and busy.json()["error"] == "busy", busy.text
    assert health.status_code == 200, health.text
    assert decision.status_code == 200 and decision.json()["allowed"] is True, decision.text
    _eventually(lambda: world.hostile.open_streams == 0, "the slow calls were let go")


def test_zz_healthy_latency_and_memory_held_through_the_attacks(world: World) -> None:
    assert world.latencies, "the healthy server was called during the attacks"
    assert statistics.median(world.latencies) < 0.5, statistics.median(world.latencies)
    assert max(world.latencies) < 5, max(world.latencies)
    assert peak_rss_mb(world.server) < 300
