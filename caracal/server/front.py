"""The HTTP front end's own limits, around uvicorn's httptools protocol (which has none):
how big a request head may be, how many header lines it may have, how long a client may
take to send it, and how many connections may be open at once.

A connection that has not finished its head holds a file descriptor and nothing else of
value, so when the cap is reached the oldest such connection is closed to make room: a
thousand connections that never finish their headers cannot lock out a client that sends
a whole request. uvicorn's `timeout_keep_alive` closes idle kept-alive connections."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("caracal.server")

# Request line and headers together (431 past it): room for a mandate token of 16 KiB (the
# longest `/v1/authorize` takes) in an Authorization header, and everything else a client sends.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100  # header lines (431 past them)
HEAD_SECONDS = 10.0  # from the connection (or the previous answer) to the end of the head
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 4096
# Descriptors kept for what is not a client connection: the store, upstreams, logs, Redis.
RESERVED_DESCRIPTORS = 128

_REFUSAL = b"request head too large or with too many lines"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_REFUSAL), _REFUSAL)
)


def connection_cap() -> int:
    """MAX_CONNECTIONS, or fewer when the process may not open that many files (the soft
    limit is raised to the hard one first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - RESERVED_DESCRIPTORS))


class _Waiting:
    """Connections still sending a request head, oldest first (one registry per process)."""

    cap = 0
    open = 0
    heads: ClassVar[dict[GuardedHttpProtocol, None]] = {}


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size, header count, head time and connection
    limits; everything else is uvicorn's."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not _Waiting.cap:
            _Waiting.cap = int(os.environ.get("CARACAL_MAX_CONNECTIONS") or 0) or connection_cap()
        self._head_bytes = 0
        self._header_lines = 0
        self._parsed_head = 0
        self._too_large = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._counted = False
        super().connection_made(transport)
        # uvicorn writes a response's head and body separately: one send per tick instead.
        self.transport = _Coalescing(transport, self.loop)  # type: ignore[assignment]
        if _Waiting.open >= _Waiting.cap and not _evict_oldest_waiting():
            log.warning("connection cap (%d) reached: refusing a connection", _Waiting.cap)
            transport.abort()
            return
        _Waiting.open += 1
        self._counted = True
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        if self._counted:
            _Waiting.open -= 1
            self._counted = False
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Counted after parsing: a chunk that ends the head may carry a body with it.
        super().data_received(data)
        if self._head_timer is not None:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head()

    # A head that arrives whole in one read is parsed before `data_received` can count it:
    # the parser's callbacks count it as it goes.
    def on_message_begin(self) -> None:
        self._parsed_head = 0
        self._header_lines = 0
        self._too_large = False
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        self._count_head(len(name) + len(value) + 4)
        if self._header_lines > MAX_HEADERS:
            self._too_large = True
            raise ValueError("too many header lines")  # stops the parser; see send_400_response
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._parsed_head += size
        if self._parsed_head > MAX_HEAD_BYTES:
            self._too_large = True
            raise ValueError("request head too large")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error: 431 when the error is a head over a limit."""
        if self._too_large:
            self._refuse_head()
            return
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    # ---- the head ------------------------------------------------------------------------
    def _await_head(self) -> None:
        self._head_done()
        self._head_bytes = self._header_lines = 0
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)
        _Waiting.heads[self] = None

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        _Waiting.heads.pop(self, None)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        _Waiting.heads.pop(self, None)
        if not self.transport.is_closing():
            self.transport.abort()

    def _refuse_head(self) -> None:
        self._head_done()
        log.warning("refused a request head over %d bytes or %d lines", MAX_HEAD_BYTES, MAX_HEADERS)
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()
        # Nothing more is parsed: the parser's partial head is dropped with it.
        self.transport.pause_reading()


class _Coalescing:
    """A transport whose writes made in one turn of the event loop leave in one send at the
    start of the next (a response's head and body, answers to pipelined requests): half the
    system calls and segments of a small answer. Closing sends what is pending first;
    aborting drops it."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _evict_oldest_waiting() -> bool:
    for oldest in _Waiting.heads:
        oldest._head_done()
        oldest.transport.abort()
        return True
    return False


def uvicorn_options() -> dict[str, Any]:
    return {"http": GuardedHttpProtocol, "timeout_keep_alive": KEEP_ALIVE_SECONDS}
