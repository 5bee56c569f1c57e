"""An upstream MCP server built with the official SDK (`MCPServer`, Streamable HTTP), served
by uvicorn in a thread on 127.0.0.1. Its tools record every call they receive, and the
server records the Authorization header each request carried."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

from tests.support.runtime import free_port


@dataclass
class Upstream:
    port: int
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    # Stop and start again on the same port: a new server that knows no session.
    restart: Callable[[bool], None] = field(default=lambda json_response: None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def called(self, tool: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == tool]


def _mcp_app(upstream: Upstream, json_response: bool) -> Any:
    server = MCPServer("docs-upstream")

    @server.tool()
    def read_doc(path: str) -> str:
        """Read one document."""
        upstream.calls.append(("read_doc", {"path": path}))
        return f"contents of {path}"

    @server.tool()
    def write_doc(path: str, text: str) -> str:
        """Write one document."""
        upstream.calls.append(("write_doc", {"path": path, "text": text}))
        return f"wrote {len(text)} characters to {path}"

    @server.tool()
    def delete_everything() -> str:
        """Never registered in Caracal: the gate must never expose or forward it."""
        upstream.calls.append(("delete_everything", {}))
        return "deleted"

    # The SDK answers requests with an SSE stream by default, or with plain JSON.
    app = server.streamable_http_app(json_response=json_response)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization")
            upstream.authorizations.append(auth.decode() if auth else None)
        await app(scope, receive, send)

    return recording


class _Served:
    """One uvicorn server in a thread."""

    def __init__(self, upstream: Upstream, json_response: bool = False) -> None:
        config = uvicorn.Config(
            _mcp_app(upstream, json_response),
            host="127.0.0.1",
            port=upstream.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="mcp-upstream", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the upstream MCP server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def running_upstream() -> Iterator[Upstream]:
    upstream = Upstream(free_port())
    served = _Served(upstream)

    def restart(json_response: bool) -> None:
        nonlocal served
        served.stop()
        served = _Served(upstream, json_response)

    upstream.restart = restart
    try:
        yield upstream
    finally:
        served.stop()
