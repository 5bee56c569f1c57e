"""`/v1/forward-auth`: the provider gateway's decision without the forwarding, for a gateway
that already proxies the call (nginx `auth_request`, Traefik `forwardAuth`, Envoy HTTP
`ext_authz`). The original call's method and URI come from the headers those gateways send,
or, for Envoy's path prefix, from the method and the path after `/v1/forward-auth`; the
provider from `X-Caracal-Provider` or the URI's first segment."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from caracal.server.call_judge import DECISION, CallJudge, Verdict
from caracal.services.gateway import released_credential

PATH = "/v1/forward-auth"
PROVIDER = "x-caracal-provider"
REASON = b"x-caracal-reason"
MANDATE = b"x-caracal-mandate"
MAX_URI = 8192


def covers(path: str) -> bool:
    """`/v1/forward-auth` itself, or followed by the original path (Envoy's path prefix)."""
    return path == PATH or path.startswith(PATH + "/")


def original_call(scope: dict[str, Any], headers: dict[str, str]) -> tuple[str, str, str]:
    """(provider, method, raw path) of the call being authorised; raw path still
    percent-encoded, without its query."""
    method = headers.get("x-original-method") or headers.get("x-forwarded-method")
    uri = headers.get("x-original-uri") or headers.get("x-forwarded-uri")
    if uri is None:  # Envoy: the original path follows the configured prefix
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        uri = raw[len(PATH) :] or "/"
    uri = uri[:MAX_URI].partition("?")[0].partition("#")[0]
    if not uri.startswith("/"):
        uri = "/" + uri
    provider = headers.get(PROVIDER)
    if provider is None:
        provider, _, rest = uri[1:].partition("/")
        uri = "/" + rest
    return provider, (method or scope["method"]).upper(), uri


async def handle(judge: CallJudge, scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    provider, method, raw_path = original_call(scope, headers)
    peer = (scope.get("client") or ("unknown",))[0]
    verdict = await judge.judge(
        provider=provider,
        method=method,
        path=unquote(raw_path),
        raw_path=raw_path,
        headers=headers,
        client=peer,
        source="forward-auth",
    )
    released: dict[str, str] = {}
    if verdict.target is not None and verdict.outcome is not None:
        peers = judge.runtime.caracal.config.runtime.gateway.credential_peers
        released = released_credential(verdict.target, peer, peers)
    await _answer(
        send, verdict, [(k.lower().encode(), v.encode("latin-1")) for k, v in released.items()]
    )


async def _answer(send: Any, verdict: Verdict, released: list[tuple[bytes, bytes]]) -> None:
    data = json.dumps(verdict.body, separators=(",", ":")).encode()
    extra = [(DECISION, (verdict.decision_id or "").encode()), *released]
    if verdict.outcome is not None and verdict.outcome.mandate_id:
        extra.append((MANDATE, verdict.outcome.mandate_id.encode()))
    if verdict.status != 200 and verdict.reason_code:
        extra.append((REASON, verdict.reason_code.encode()))
    await send(
        {
            "type": "http.response.start",
            "status": verdict.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                *extra,
                *(verdict.extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
