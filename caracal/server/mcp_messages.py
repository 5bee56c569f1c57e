"""The MCP gate's JSON-RPC 2.0 messages: one read strictly from a request (its origin, content
type, protocol version and size, the one strict JSON reader, and the shapes MCP allows), and
the answers built for it (a result, or an error with its HTTP status and challenge)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.server.mcp_upstream import HANDSHAKE_VERSIONS
from caracal.server.outcomes import Outcome
from caracal.server.requests import DRAIN_BYTES, drain
from caracal.server.statuses import challenge

MAX_BODY_BYTES = 1024 * 1024
# JSON-RPC codes: the standard ones, then the gate's own in the implementation-defined band
# (-32000 and -32001 are taken by the MCP SDK for closed connections and timeouts).
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
INTERNAL_ERROR = -32603
DENIED, UPSTREAM_FAILED, UNKNOWN_SERVER = -32010, -32011, -32012


class JsonRpcResponse(JSONResponse):
    """JSON with non-ASCII escaped: ids, method and tool names are echoed back, and a lone
    surrogate (`"\\ud800"` is valid JSON) cannot be encoded as UTF-8."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


class Rejected(Exception):
    """A request answered with a JSON-RPC error (and an HTTP status) before dispatch."""

    def __init__(self, status: int, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data


# ---- answers ------------------------------------------------------------------------------
def rpc_error(
    request_id: Any,
    code: int,
    message: str,
    data: Any = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> JsonRpcResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return JsonRpcResponse(
        {"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=status, headers=headers
    )


def rpc_result(
    request_id: Any, result: Any, headers: dict[str, str] | None = None
) -> JsonRpcResponse:
    return JsonRpcResponse({"jsonrpc": "2.0", "id": request_id, "result": result}, headers=headers)


def denial_data(outcome: Outcome, decision_id: str | None) -> dict[str, Any]:
    """The `data` of a denial's JSON-RPC error."""
    return {
        "reason_code": outcome.reason_code,
        "reason": outcome.reason,
        "decision_id": decision_id,
        "mandate_id": outcome.mandate_id,
    }


def challenge_headers(reason_code: str) -> dict[str, str]:
    """The `WWW-Authenticate` header of a denial, as the other enforcement points send it."""
    return {name.decode(): value.decode() for name, value in challenge(reason_code)}


# ---- reading ------------------------------------------------------------------------------
async def read_message(request: Request) -> dict[str, Any]:
    """The one JSON-RPC message of a POST, or Rejected."""
    origin = request.headers.get("origin")
    if origin and _netloc(origin) != request.headers.get("host"):
        raise Rejected(403, INVALID_REQUEST, f"Origin {origin!r} is not allowed.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Rejected(415, INVALID_REQUEST, "Send JSON-RPC as Content-Type: application/json.")
    version = request.headers.get("mcp-protocol-version")
    if version is not None and version not in HANDSHAKE_VERSIONS:
        raise Rejected(400, INVALID_REQUEST, f"Unsupported MCP-Protocol-Version {version!r}.")
    body = await _read_body(request)
    try:
        message = strict_loads(body)
    except StrictJSONError as exc:
        raise Rejected(400, PARSE_ERROR, f"Parse error: {exc}.") from None
    if isinstance(message, list):
        raise Rejected(400, INVALID_REQUEST, "Batches are not supported; send one message.")
    _check_shape(message)
    return message  # type: ignore[no-any-return]


def _netloc(url: str) -> str | None:
    try:
        return urlsplit(url).netloc
    except ValueError:  # e.g. `http://[` (an unclosed IPv6 literal): no origin we allow
        return None


async def _read_body(request: Request) -> bytes:
    too_large = Rejected(413, INVALID_REQUEST, f"The request is over {MAX_BODY_BYTES} bytes.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        if int(declared) <= DRAIN_BYTES:
            await drain(request.receive)
        raise too_large
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise Rejected(400, INVALID_REQUEST, "The client went away.")
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if more:
                await drain(request.receive, DRAIN_BYTES - size)
            raise too_large
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)


def _check_shape(message: Any) -> None:
    """A JSON-RPC 2.0 request, notification or response, as MCP allows them."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise Rejected(400, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object.")
    if "id" in message:
        request_id = message["id"]
        if isinstance(request_id, bool) or not isinstance(request_id, str | int):
            raise Rejected(400, INVALID_REQUEST, "Invalid Request: id must be a string or integer.")
    if "method" in message:
        if not isinstance(message["method"], str):
            raise Rejected(400, INVALID_REQUEST, "Invalid Request: method must be a string.")
        if message.get("params") is not None and not isinstance(message["params"], dict):
            raise Rejected(400, INVALID_PARAMS, "Invalid params: params must be an object.")
    elif "id" not in message or not ("result" in message or "error" in message):
        raise Rejected(400, INVALID_REQUEST, "Invalid Request: no method, result or error.")
