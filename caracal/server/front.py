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

MAX_HEAD_BYTES = 16 * 1024  # request line and headers together
MAX_HEADERS = 100
HEAD_SECONDS = 10.0  # from the connection (or the previous answer) to the end of the head
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 4096
# Descriptors kept for what is not a client connection: the store, upstreams, logs, Redis.
RESERVED_DESCRIPTORS = 128

_REFUSAL = b"request head too large"
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
        self._head_timer: asyncio.TimerHandle | None = None
        self._counted = False
        super().connection_made(transport)
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

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > MAX_HEADERS:
            # Raised inside the parser: uvicorn answers 400 and closes.
            raise ValueError("too many header lines")
        super().on_header(name, value)

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
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()
        # Nothing more is parsed: the parser's partial head is dropped with it.
        self.transport.pause_reading()


def _evict_oldest_waiting() -> bool:
    for oldest in _Waiting.heads:
        oldest._head_done()
        oldest.transport.abort()
        return True
    return False


def uvicorn_options() -> dict[str, Any]:
    return {"http": GuardedHttpProtocol, "timeout_keep_alive": KEEP_ALIVE_SECONDS}
