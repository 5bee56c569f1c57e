"""A real HTTP provider on 127.0.0.1 for the gateway's tests (aiohttp in its own thread): it
records what it receives, counts bodies without keeping them, and can stream large answers
and server-sent events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_bytes: int
    body_head: bytes


@dataclass
class ProviderUpstream:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    sse_ack: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


CHUNK = 1024 * 1024


def _app(state: ProviderUpstream) -> web.Application:
    async def any_call(request: web.Request) -> web.StreamResponse:
        size, head = 0, b""
        async for chunk in request.content.iter_chunked(CHUNK):
            if len(head) < 256:
                head += chunk[: 256 - len(head)]
            size += len(chunk)
        state.received.append(
            Received(
                request.method,
                request.raw_path.partition("?")[0],
                request.query_string,
                {k.lower(): v for k, v in request.headers.items()},
                size,
                head,
            )
        )
        tail = request.path.rsplit("/", 1)[-1]
        if tail == "download":
            total = int(request.query.get("bytes", "0"))
            reply = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            reply.content_length = total
            await reply.prepare(request)
            block = b"x" * CHUNK
            while total > 0:
                await reply.write(block[: min(total, CHUNK)])
                total -= CHUNK
            await reply.write_eof()
            return reply
        if tail == "events":
            reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await reply.prepare(request)
            await reply.write(b"data: first\n\n")
            # The second event only once the agent has the first: a gateway that buffered
            # the stream would hold the first back, and this would time out.
            acked = await asyncio.to_thread(state.sse_ack.wait, 20)
            await reply.write(b"data: second\n\n" if acked else b"data: never-acked\n\n")
            await reply.write_eof()
            return reply
        if tail == "slow":
            await asyncio.sleep(30)
        if tail == "set-cookie":
            reply = web.json_response({"ok": True})
            reply.set_cookie("session", "for-whoever-called-first", path="/")
            return reply
        if tail == "redirect":
            raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
        if tail == "echo-credential":
            return web.json_response(
                {"ok": True}, headers={"X-Seen": request.headers.get("Authorization", "")}
            )
        return web.json_response({"ok": True, "path": request.path}, status=200)

    app = web.Application(client_max_size=1024**4)
    app.router.add_route("*", "/{tail:.*}", any_call)
    return app


@contextmanager
def provider_upstream() -> Iterator[ProviderUpstream]:
    state = ProviderUpstream()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner: dict[str, Any] = {}

    async def start() -> None:
        app_runner = web.AppRunner(_app(state), access_log=None, shutdown_timeout=1.0)
        await app_runner.setup()
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runner["runner"] = app_runner
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "the provider upstream did not start"
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(runner["runner"].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
