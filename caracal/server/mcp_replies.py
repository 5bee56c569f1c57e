"""An upstream MCP server's answer to one POST (Streamable HTTP): JSON, or a stream of
server-sent events (its lines split as that format defines them) holding the response among
the upstream's own notifications. All of it counts against the call's byte budget and goes
through the one strict reader; big answers are parsed off the event loop, a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from caracal.core.canonical import strict_loads
from caracal.server.mcp_limits import (
    BIG_PARSES,
    PARSE_OFF_LOOP_BYTES,
    ReplyBudget,
    UpstreamError,
    check_containers,
)


class ReplyReader:
    """Reads answers for one pool of upstream sessions (and bounds its parses off the loop)."""

    def __init__(self) -> None:
        self._big: asyncio.Semaphore | None = None

    async def answer(
        self, r: aiohttp.ClientResponse, request_id: int, budget: ReplyBudget
    ) -> dict[str, Any]:
        kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "text/event-stream" and r.status < 400:
            async for data in _sse_data(r, budget):
                found = _match(await self.parse(data, budget), request_id)
                if found is not None:
                    return found
            raise UpstreamError("the upstream closed its event stream without an answer")
        if kind == "application/json":
            found = _match(await self.parse(await _read(r, budget), budget), request_id)
            if found is not None:
                return found
        if r.status in (401, 403):
            raise UpstreamError(f"the upstream refused the gate's credential (HTTP {r.status})")
        raise UpstreamError(f"the upstream answered HTTP {r.status} ({kind or 'no body'})")

    async def parse(self, data: bytes | str, budget: ReplyBudget) -> Any:
        """Small answers on the loop; big ones in a thread, a few at a time, so that the
        decisions on the loop keep their latency and memory stays within a few answers."""
        if len(data) < PARSE_OFF_LOOP_BYTES:
            check_containers(data, budget.containers)
            return _loads(data)
        if self._big is None:
            self._big = asyncio.Semaphore(BIG_PARSES)
        async with self._big:
            return await asyncio.to_thread(_checked_loads, data, budget.containers)


def _checked_loads(data: bytes | str, containers: int) -> Any:
    check_containers(data, containers)
    return _loads(data)


def _loads(data: bytes | str) -> Any:
    """The upstream's answer, through the one strict reader: a duplicated key (`result` twice,
    say) is not read one way here and another way by the agent."""
    try:
        return strict_loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UpstreamError(f"the upstream sent invalid JSON ({exc})") from None


def _match(message: Any, request_id: int) -> dict[str, Any] | None:
    """The JSON-RPC response to `request_id` (server notifications and requests are skipped)."""
    if (
        isinstance(message, dict)
        and message.get("id") == request_id
        and ("result" in message or "error" in message)
    ):
        return message
    return None


async def _read(r: aiohttp.ClientResponse, budget: ReplyBudget) -> bytes:
    if r.content_length is not None and r.content_length > budget.left:
        budget.spend(r.content_length)  # refused before reading: it says it is too big
    chunks = []
    async for chunk in r.content.iter_any():
        budget.spend(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


async def _lines(r: aiohttp.ClientResponse, budget: ReplyBudget) -> AsyncIterator[str]:
    """The stream's lines, split at CRLF, LF or CR as server-sent events define them; the
    whole stream counts against the call's budget."""
    line: list[bytes] = []
    carriage = False  # the last chunk ended with CR: a LF starting the next one belongs to it
    async for received in r.content.iter_any():
        budget.spend(len(received))
        chunk = received[1:] if carriage and received.startswith(b"\n") else received
        carriage = chunk.endswith(b"\r")
        *ended, rest = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for part in ended:
            line.append(part)
            yield b"".join(line).decode("utf-8", "replace")
            line = []
        line.append(rest)
    if any(line):
        yield b"".join(line).decode("utf-8", "replace")


async def _sse_data(r: aiohttp.ClientResponse, budget: ReplyBudget) -> AsyncIterator[str]:
    """The data of each server-sent event (other fields and comments are ignored)."""
    lines: list[str] = []
    async for line in _lines(r, budget):
        if not line:
            if lines:
                yield "\n".join(lines)
            lines = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)
