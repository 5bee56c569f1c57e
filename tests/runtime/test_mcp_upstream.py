"""The upstream pool on its own: how the gate reads an MCP server's answers. No MCP SDK is
needed here, so these run in the lowest-versions job too (.ci/lowest-versions.sh)."""

from __future__ import annotations

import json

import pytest

from caracal.services.tools import McpServer


async def test_an_upstream_answer_with_a_duplicated_key_is_refused() -> None:
    """The gate reads the upstream's JSON with the one strict reader: `{"result": A,
    "result": B}` is not passed on as B (nor as A)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from caracal.server.mcp_upstream import UpstreamError, UpstreamPool

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if "id" not in message:
                self.send_response(202)
                self.end_headers()
                return
            if message["method"] == "initialize":
                body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "serverInfo": {"name": "dup", "version": "1"}}}).encode()  # fmt: skip
            else:
                benign = '{"content": [{"type": "text", "text": "harmless"}]}'
                other = '{"content": [{"type": "text", "text": "something else"}]}'
                body = (
                    f'{{"jsonrpc": "2.0", "id": {message["id"]}, "result": {benign}, '
                    f'"result": {other}}}'
                ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()

    async def no_auth(_server: str) -> dict[str, str]:
        return {}

    pool = UpstreamPool(no_auth)
    server = McpServer("dup", f"http://127.0.0.1:{http.server_address[1]}/mcp", 1.0, {})
    try:
        with pytest.raises(UpstreamError, match="duplicate key 'result'"):
            await pool.request(server, "tools/call", {"name": "x", "arguments": {}})
    finally:
        await pool.aclose()
        http.shutdown()
        http.server_close()
