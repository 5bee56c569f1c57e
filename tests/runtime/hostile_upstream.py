"""A hostile upstream MCP server, written on raw asyncio streams and served from a thread on
127.0.0.1. Each path misbehaves its own way once a session is open:

- `/trickle`: tools/call answers with an event stream that sends a notification every
  half second and never the answer;
- `/huge`: tools/list pages of about 3 MB of `{}`, 50 of them, each naming a next page;
- `/nested`: tools/call answers with a result nested 100,000 arrays deep;
- `/hang`: initialize is never answered.

It counts the event streams it holds open, so a test can see the gate let go of them."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

PAGE_OF_EMPTY_OBJECTS = b",".join([b"{}"] * 1_000_000)  # about 3 MB


@dataclass
class Hostile:
    port: int
    open_streams: int = 0
    calls: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, Any] | None]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return path, (json.loads(body) if body else None)


def _json(body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode() + body


async def _serve(
    hostile: Hostile, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        path, message = await _read_request(reader)
        message = message or {}
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif method == "initialize":
            if path == "/hang":
                await asyncio.sleep(3600)
            result = {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hostile", "version": "1"},
            }
            body = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode()
            writer.write(_json(body, "Mcp-Session-Id: hostile-session\r\n"))
        elif method == "tools/list" and path == "/huge":
            page = int((message.get("params") or {}).get("cursor") or 0)
            writer.write(
                _json(
                    b'{"jsonrpc":"2.0","id":%d,"result":{"nextCursor":"%d","tools":[%s]}}'
                    % (request_id, page + 1, PAGE_OF_EMPTY_OBJECTS)
                )
            )
        elif method == "tools/list":
            tools = [{"name": "poke", "inputSchema": {"type": "object"}}]
            body = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}})
            writer.write(_json(body.encode()))
        elif method == "tools/call" and path == "/nested":
            hostile.calls += 1
            depth = 100_000
            body = b'{"jsonrpc":"2.0","id":%d,"result":%s%s}' % (
                request_id,
                b"[" * depth,
                b"]" * depth,
            )
            writer.write(_json(body))
        elif method == "tools/call":
            hostile.calls += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            )
            hostile.open_streams += 1
            try:
                note = b'data: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n'
                while True:
                    writer.write(note)
                    await writer.drain()
                    await asyncio.sleep(0.5)
            finally:
                hostile.open_streams -= 1
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@contextmanager
def running_hostile_upstream() -> Iterator[Hostile]:
    loop = asyncio.new_event_loop()
    hostile = Hostile(0)
    ready = threading.Event()
    server: asyncio.Server | None = None

    async def start() -> None:
        nonlocal server
        server = await asyncio.start_server(
            lambda r, w: _serve(hostile, r, w), "127.0.0.1", 0, limit=1024 * 1024
        )
        hostile.port = server.sockets[0].getsockname()[1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="hostile-upstream", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise AssertionError("the hostile upstream did not start")
    try:
        yield hostile
    finally:

        async def stop() -> None:
            if server is not None:
                server.close()
            tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
