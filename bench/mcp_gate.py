"""The MCP gate under load: `tools/call` through `POST /mcp/<server>` from a separate process.

`mcp-gate`: `caracal serve` (one process, the ledger on) on the embedded SQLite store, in front
of a trivial upstream MCP server on 127.0.0.1 in its own process (one tool, `echo`, which
returns its argument). The provider `echo` (`--service-type mcp`) points at it, the tool is
registered, and one mandate allows it. The load client initializes once through the gate
(`Mcp-Session-Id`, `MCP-Protocol-Version`), then sends JSON-RPC `tools/call` requests with the
mandate as `Authorization: Bearer`, from 16 keep-alive connections for 10 s (3 s with --quick)
after a 2 s warm-up, with `wrk` when it is installed, else with `bench/loadgen.py`. Each call
is decided, recorded in the ledger, forwarded to the upstream and answered. Target: ≥ 1,000
tool calls/s; p50 and p99 latency reported. Extras: the upstream alone (no gate), and the gate
on PostgreSQL (`CARACAL_BENCH_PG_DSN`, as in `runtime-authorize`).

The upstream is a minimal hand-written Streamable HTTP server (uvicorn + Starlette, plain JSON
answers) by default; `CARACAL_BENCH_MCP_UPSTREAM=sdk` uses the official SDK's `MCPServer`
(`json_response=True`) instead, which is several times slower and becomes the bottleneck on a
2-core machine. Either counts the calls it serves (`GET /count`).

Afterwards every run checks that the ledger holds one `validation.allowed` event per answered
call (and no denial), that the upstream received exactly one call per allowed decision, and that
the ledger verifies.

The upstream alone: `python -m bench.mcp_gate upstream --port P [--kind plain|sdk]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import Result, Sizes, temporary_home
from bench.runtime import _drop, _free_port, _pg_dsn, _start_server

ROOT = Path(__file__).resolve().parent.parent
BENCH = "mcp-gate"
CONNECTIONS = 16
WARM_SECONDS = 2
SERVER = "echo"  # the provider (MCP server) name
TOOL = "echo"
RESOURCE = f"provider:{SERVER}:resource:calls"
ACTION = f"provider:{SERVER}:action:call"
PROTOCOL = "2025-06-18"
TEXT = "hello"
# The `tools/call` request; with wrk each one carries its own id (%d), as JSON-RPC wants within
# a session (the SDK's server pairs answers with requests by id); loadgen repeats id 1.
CALL_TEMPLATE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": {"text": TEXT}},
    },
    separators=(",", ":"),
).replace('"id":0', '"id":%d')
CALL = CALL_TEMPLATE % 1


# ---- the upstream MCP server (its own process) --------------------------------------------
def _plain_app(counter: list[int]) -> Any:
    """A minimal Streamable HTTP MCP server: every request answered with one JSON body."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    echo = {
        "name": TOOL,
        "description": "Return the text it is given.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    }

    async def mcp(request: Request) -> Response:
        message = json.loads(await request.body())
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            return Response(status_code=202)  # notifications and responses
        method, params = message["method"], message.get("params") or {}
        error: dict[str, Any] | None = None
        headers: dict[str, str] = {}
        result: Any = {}
        if method == "initialize":
            asked = params.get("protocolVersion")
            result = {
                "protocolVersion": asked if isinstance(asked, str) else PROTOCOL,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "bench-echo", "version": "1"},
            }
            headers["Mcp-Session-Id"] = "bench-session"
        elif method == "tools/list":
            result = {"tools": [echo]}
        elif method == "tools/call":
            if params.get("name") != TOOL:
                error = {"code": -32602, "message": f"Unknown tool: {params.get('name')}"}
            else:
                counter[0] += 1
                text = str((params.get("arguments") or {}).get("text", ""))
                result = {"content": [{"type": "text", "text": text}], "isError": False}
        elif method != "ping":
            error = {"code": -32601, "message": f"Method not found: {method}"}
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        body.update({"error": error} if error else {"result": result})
        return JSONResponse(body, headers=headers)

    async def count(_: Request) -> Response:
        return JSONResponse({"calls": counter[0]})

    return Starlette(
        routes=[Route("/mcp", mcp, methods=["POST"]), Route("/count", count, methods=["GET"])]
    )


def _sdk_app(counter: list[int]) -> Any:
    """The official SDK's server (stateful sessions, plain JSON answers), plus `GET /count`."""
    from mcp.server.mcpserver import MCPServer
    from starlette.responses import JSONResponse

    server = MCPServer("bench-echo")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text it is given."""
        counter[0] += 1
        return text

    app = server.streamable_http_app(json_response=True)

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/count":
            await JSONResponse({"calls": counter[0]})(scope, receive, send)
            return
        await app(scope, receive, send)

    return counting


def _serve_upstream(port: int, kind: str) -> None:
    import uvicorn

    counter = [0]
    app = _sdk_app(counter) if kind == "sdk" else _plain_app(counter)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _start_upstream(port: int, kind: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.mcp_gate", "upstream", "--port", str(port), "--kind", kind],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            _upstream_count(port)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the upstream MCP server ({kind}) did not start") from None
            time.sleep(0.1)


def _upstream_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as reply:
        return int(json.loads(reply.read())["calls"])


def _settled_count(port: int) -> int:
    """The upstream's count once calls still in flight when the load stopped have finished
    (the SDK's server completes a call whose client already went away)."""
    count = _upstream_count(port)
    for _ in range(50):
        time.sleep(0.2)
        again = _upstream_count(port)
        if again == count:
            return count
        count = again
    raise RuntimeError("the upstream's call count does not settle")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# ---- the workspace -------------------------------------------------------------------------
def _cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "caracal", *args], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(f"caracal {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _workspace(store_url: str | None, upstream_url: str) -> str:
    """The workspace, the MCP provider and its tool, a policy, and a mandate for the tool."""
    create = ["workspace", "create", "bench"] + (["--store-url", store_url] if store_url else [])
    _cli(*create)
    _cli(
        "provider", "add", SERVER, "--service-type", "mcp", "--base-url", upstream_url,
        "--resource", "calls", "--action", "calls:call",
    )  # fmt: skip
    _cli("tool", "register", TOOL, "--server", SERVER, "--resource", RESOURCE, "--action", ACTION)
    _cli("principal", "register", "--kind", "human", "--name", "alice")
    _cli("principal", "register", "--kind", "worker", "--name", "agent")
    _cli(
        "policy", "create", "--principal", "agent", "--max-validity", "1h",
        "--resource", f"provider:{SERVER}:resource:*", "--action", f"provider:{SERVER}:action:*",
    )  # fmt: skip
    issued = _cli(
        "mandate", "issue", "--issuer", "alice", "--subject", "agent", "--ttl", "1h",
        "--resource", RESOURCE, "--action", ACTION, "--json",
    )  # fmt: skip
    return str(json.loads(issued)["token"])


# ---- the MCP client side -------------------------------------------------------------------
def _post(url: str, message: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, Any]:
    body = json.dumps(message).encode()
    sent = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        **headers,
    }
    # `url` is always http://127.0.0.1:PORT/...
    request = urllib.request.Request(url, data=body, headers=sent, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
        data = reply.read()
        return reply.status, (json.loads(data) if data else None), reply.headers


def _initialize(url: str, headers: dict[str, str]) -> dict[str, str]:
    """The MCP handshake once; the headers every later request of the session carries."""
    hello = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "caracal-bench", "version": "1"},
        },
    }
    _, reply, reply_headers = _post(url, hello, headers)
    version = (reply or {}).get("result", {}).get("protocolVersion")
    if not isinstance(version, str):
        raise RuntimeError(f"initialize failed at {url}: {reply}")
    session = {**headers, "MCP-Protocol-Version": version}
    if reply_headers.get("mcp-session-id"):
        session["Mcp-Session-Id"] = reply_headers["mcp-session-id"]
    status, _, _ = _post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    if status != 202:
        raise RuntimeError(f"notifications/initialized answered HTTP {status} at {url}")
    return session


def _expect_echo(url: str, headers: dict[str, str]) -> None:
    """One call, checked: the benchmark measures the success path only."""
    _, reply, _ = _post(url, json.loads(CALL), headers)
    content = ((reply or {}).get("result") or {}).get("content") or [{}]
    if content[0].get("text") != TEXT:
        raise RuntimeError(f"tools/call through {url} did not echo: {reply}")


# ---- load ----------------------------------------------------------------------------------
def _wrk(url: str, headers: dict[str, str], seconds: int) -> dict[str, float]:
    lines = ['wrk.method = "POST"']
    every = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        **headers,
    }
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in every.items()]
    script = (
        "\n".join(lines) + "\n"
        f"local template = {json.dumps(CALL_TEMPLATE)}\n"
        "local threads, sent = 0, 0\n"
        "setup = function(thread)\n"  # runs in the main state: one index per thread
        '  thread:set("index", threads)\n'
        "  threads = threads + 1\n"
        "end\n"
        "request = function()\n"  # runs in each thread's own state
        "  sent = sent + 1\n"
        "  local body = string.format(template, index * 1000000000 + sent)\n"
        "  return wrk.format(nil, nil, nil, body)\n"
        "end\n"
    )
    return wrk.run(url, script, seconds=seconds, connections=CONNECTIONS)


def _loadgen(url: str, headers: dict[str, str], seconds: int) -> dict[str, float]:
    port, path = url.removeprefix("http://127.0.0.1:").split("/", 1)
    command = [
        sys.executable, "-m", "bench.loadgen", "--port", port, "--path", f"/{path}",
        "--connections", str(CONNECTIONS), "--seconds", str(seconds), "--body", CALL,
        "--header", "Accept:application/json, text/event-stream",
    ]  # fmt: skip
    for name, value in headers.items():
        command += ["--header", f"{name}:{value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def _load(url: str, headers: dict[str, str], seconds: int) -> tuple[dict[str, float], str]:
    if shutil.which("wrk"):
        return _wrk(url, headers, seconds), "wrk"
    return _loadgen(url, headers, seconds), "loadgen"


def _check_clean(figures: dict[str, float], what: str) -> None:
    if figures["non_2xx"] or figures["socket_errors"]:
        raise RuntimeError(
            f"{what}: {figures['non_2xx']:.0f} non-2xx answers, "
            f"{figures['socket_errors']:.0f} socket errors"
        )


# ---- one run -------------------------------------------------------------------------------
def _run(
    store_url: str | None, seconds: int, kind: str, direct: bool
) -> tuple[dict[str, float], dict[str, float] | None, str]:
    """The gate's figures, the upstream's alone (when `direct`), and the load driver."""
    upstream_port = _free_port()
    upstream = _start_upstream(upstream_port, kind)
    try:
        upstream_url = f"http://127.0.0.1:{upstream_port}/mcp"
        token = _workspace(store_url, upstream_url)
        alone = None
        # loadgen repeats one request id, which the SDK's server refuses within a session.
        if direct and (kind == "plain" or shutil.which("wrk")):
            session = _initialize(upstream_url, {})
            _expect_echo(upstream_url, session)
            _load(upstream_url, session, WARM_SECONDS)
            alone, _ = _load(upstream_url, session, seconds)
            _check_clean(alone, "the upstream alone")
        before = _settled_count(upstream_port)
        port = _free_port()
        server = _start_server(port)
        try:
            url = f"http://127.0.0.1:{port}/mcp/{SERVER}"
            session = _initialize(url, {"Authorization": f"Bearer {token}"})
            _expect_echo(url, session)
            _load(url, session, WARM_SECONDS)
            figures, driver = _load(url, session, seconds)
            _check_clean(figures, "the gate")
        finally:
            _stop(server)
        forwarded = _settled_count(upstream_port) - before
    finally:
        _stop(upstream)
    _check_ledger(figures["requests"], forwarded)
    return figures, alone, driver


def _check_ledger(answered: float, forwarded: int) -> None:
    """Every answered call was allowed and recorded, the upstream received one call per
    allowed decision (less the calls cancelled when a load run stopped), and the ledger
    verifies."""
    from caracal.services.facade import Caracal
    from caracal.services.ledger_reads import LedgerFilter

    with Caracal.open("bench") as app:
        allowed = app.ledger.count(LedgerFilter(types=["validation.allowed"]))
        denied = app.ledger.count(LedgerFilter(types=["validation.denied"]))
        if denied:
            raise RuntimeError(f"{denied} calls were denied")
        if allowed < answered:
            raise RuntimeError(f"{answered:.0f} calls answered, {allowed} recorded")
        # Never a call forwarded without an allow. When a load run stops, the calls still in
        # flight lose their caller and the gate cancels them (allowed and recorded, never sent):
        # at most one per connection, for the warm-up and for the measured run.
        if not allowed - 2 * CONNECTIONS <= forwarded <= allowed:
            raise RuntimeError(f"{allowed} calls allowed, {forwarded} reached the upstream")
        report = app.ledger.verify()
        if not report.ok:
            raise RuntimeError(f"the ledger does not verify after the load: {report.problem}")


def _results(
    label: str, figures: dict[str, float], driver: str, kind: str, target: bool
) -> list[Result]:
    notes = [
        f"{driver}, {CONNECTIONS} connections: {figures['requests']:.0f} tool calls answered, "
        f"each recorded in the ledger and forwarded to the {kind} upstream"
    ]
    return [
        Result(
            BENCH,
            f"{label}: tool calls/s",
            figures["rate"],
            "/s",
            target=1000 if target else None,
            higher_is_better=True,
            notes=notes,
        ),
        Result(BENCH, f"{label}: p50 latency", figures["p50_ms"] * 1e6, "ns"),
        Result(BENCH, f"{label}: p99 latency", figures["p99_ms"] * 1e6, "ns"),
    ]


def bench_mcp_gate(sizes: Sizes) -> list[Result]:
    """MCP `tools/call` through the gate (decided, recorded, forwarded): calls/s, p50, p99."""
    seconds = 10 if sizes.backup_runs > 1 else 3
    kind = os.environ.get("CARACAL_BENCH_MCP_UPSTREAM", "plain")
    if kind not in ("plain", "sdk"):
        raise ValueError(f"CARACAL_BENCH_MCP_UPSTREAM must be plain or sdk, not {kind!r}")
    out: list[Result] = []
    with temporary_home():
        figures, alone, driver = _run(None, seconds, kind, direct=True)
        out += _results("SQLite", figures, driver, kind, target=True)
    if alone is not None:
        out.append(
            Result(
                BENCH,
                f"{kind} upstream alone: tool calls/s",
                alone["rate"],
                "/s",
                higher_is_better=True,
                notes=[f"no gate; p50 {alone['p50_ms']:.2f} ms, p99 {alone['p99_ms']:.2f} ms"],
            )
        )
    url = _pg_dsn()
    if url is None:
        print("    PostgreSQL unreachable: its figures are skipped", flush=True)
        return out
    try:
        with temporary_home():
            store_url = url.replace("postgresql://", "postgresql+psycopg://")
            figures, _, driver = _run(store_url, seconds, kind, direct=False)
            out += _results("PostgreSQL", figures, driver, kind, target=False)
    finally:
        _drop(url)
    return out


BENCHMARKS: dict[str, Any] = {BENCH: bench_mcp_gate}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_gate")
    parser.add_argument("role", choices=["upstream"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=["plain", "sdk"], default="plain")
    args = parser.parse_args()
    _serve_upstream(args.port, args.kind)


if __name__ == "__main__":
    main()
