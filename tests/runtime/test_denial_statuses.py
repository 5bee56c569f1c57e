"""One status rule for every enforcement point (RFC 6750 section 3.1): `/v1/authorize`, the
provider gateway, forward authentication and the MCP gate answer 401 `invalid_token` when the
token is no usable mandate, 403 `insufficient_scope` when a valid mandate does not allow the
call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.cli import Result, run_cli
from tests.support.runtime import Server, serve

pytestmark = pytest.mark.timeout(180)

READ = "provider:api:action:read"
WRITE = "provider:api:action:write"
REPOS = "provider:api:resource:repos"
TOOL_READ = "provider:tools:action:read"
TOOL_WRITE = "provider:tools:action:write"
TOOL_REPOS = "provider:tools:resource:repos"


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@dataclass
class Answer:
    status: int
    reason_code: str | None
    challenge: str | None


@dataclass
class World:
    server: Server
    token: str
    revoked: str

    def authorize(self, token: str, action: str) -> Answer:
        reply = httpx.post(
            self.server.url + "/v1/authorize",
            json={"token": token, "action": action, "resource": REPOS},
            timeout=30,
        )
        return _answer(reply)

    def gateway(self, method: str, path: str, token: str | None) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        reply = httpx.request(
            method, f"{self.server.url}/v1/providers/api{path}", headers=headers, timeout=30
        )
        return _answer(reply)

    def forward_auth(self, method: str, path: str, token: str | None) -> Answer:
        headers = {"X-Original-Method": method, "X-Original-URI": f"/api{path}"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        reply = httpx.get(self.server.url + "/v1/forward-auth", headers=headers, timeout=30)
        return _answer(reply)

    def mcp(self, method: str, token: str | None, server: str = "tools", **params: Any) -> Answer:
        """A JSON-RPC request to the MCP gate; a denial's reason code is in its error's data."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        reply = httpx.post(
            f"{self.server.url}/mcp/{server}", json=message, headers=headers, timeout=30
        )
        error = reply.json().get("error") or {}
        return Answer(
            reply.status_code,
            (error.get("data") or {}).get("reason_code"),
            reply.headers.get("www-authenticate"),
        )

    def mcp_call(self, tool: str, token: str | None) -> Answer:
        return self.mcp("tools/call", token, name=tool, arguments={})


def _answer(reply: httpx.Response) -> Answer:
    body: dict[str, Any] = reply.json()
    return Answer(reply.status_code, body.get("reason_code"), reply.headers.get("www-authenticate"))


def _issue() -> tuple[str, str]:
    issued = ok(
        run_cli(
            "mandate", "issue", "--issuer", "alice", "--subject", "agent", "--ttl", "30m",
            "--resource", REPOS, "--action", READ,
            "--resource", TOOL_REPOS, "--action", TOOL_READ, "--json",
        )
    ).json()  # fmt: skip
    return str(issued["token"]), str(issued["id"])


@pytest.fixture
def world(home: Any) -> Iterator[World]:
    ok(run_cli("workspace", "create", "statuses"))
    # Port 9 (discard): nothing is forwarded in these tests, every call is refused first.
    ok(run_cli("provider", "add", "api", "--base-url", "http://127.0.0.1:9",
               "--resource", "repos", "--action", "repos:read:GET:/repos",
               "--action", "repos:write:POST:/repos"))  # fmt: skip
    # MCP servers nobody answers for: one with two tools, one with none.
    for server in ("tools", "empty"):
        ok(run_cli("provider", "add", server, "--service-type", "mcp",
                   "--base-url", "http://127.0.0.1:9/mcp",
                   "--resource", "repos", "--action", "repos:read", "--action", "repos:write"))  # fmt: skip
    for tool, action in (("read_repo", TOOL_READ), ("write_repo", TOOL_WRITE)):
        ok(run_cli("tool", "register", tool, "--server", "tools",
                   "--resource", TOOL_REPOS, "--action", action))  # fmt: skip
    ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
    ok(run_cli("principal", "register", "--kind", "worker", "--name", "agent"))
    ok(run_cli("policy", "create", "--principal", "agent", "--max-validity", "1h",
               "--resource", "provider:api:resource:*", "--action", "provider:api:action:*",
               "--resource", TOOL_REPOS, "--action", "provider:tools:action:*"))  # fmt: skip
    token, _ = _issue()
    revoked, revoked_id = _issue()
    ok(run_cli("mandate", "revoke", revoked_id, "--yes"))
    with serve() as server:
        yield World(server, token, revoked)


INVALID = 'Bearer realm="caracal", error="invalid_token"'
SCOPE = 'Bearer realm="caracal", error="insufficient_scope"'


def test_no_token_is_401_with_a_bare_challenge(world: World) -> None:
    for answer in (
        world.gateway("GET", "/repos/x", None),
        world.forward_auth("GET", "/repos/x", None),
        world.mcp_call("read_repo", None),
        world.mcp("tools/list", None),
    ):
        assert answer == Answer(401, "TOKEN_MISSING", 'Bearer realm="caracal"')
    # /v1/authorize carries the token in its body: an empty one is a malformed request.
    reply = httpx.post(
        world.server.url + "/v1/authorize",
        json={"token": "", "action": READ, "resource": REPOS},
        timeout=30,
    )
    assert reply.status_code == 400 and reply.json()["field"] == "token"


@pytest.mark.parametrize(
    ("which", "code"),
    [("garbage", "TOKEN_MALFORMED"), ("revoked", "MANDATE_REVOKED")],
)
def test_an_unusable_token_is_401_invalid_token_everywhere(
    world: World, which: str, code: str
) -> None:
    token = "not.a.mandate" if which == "garbage" else world.revoked
    answers = [
        world.authorize(token, READ),
        world.gateway("GET", "/repos/x", token),
        world.forward_auth("GET", "/repos/x", token),
        world.mcp_call("read_repo", token),
        # A listing says what a token may do: with no usable mandate, it is refused too,
        # also where no tool is registered to check the token against.
        world.mcp("tools/list", token),
        world.mcp("tools/list", token, server="empty"),
    ]
    assert answers == [Answer(401, code, INVALID)] * 6


def test_a_valid_mandate_that_does_not_allow_the_call_is_403_everywhere(world: World) -> None:
    answers = [
        world.authorize(world.token, WRITE),
        world.gateway("POST", "/repos", world.token),
        world.forward_auth("POST", "/repos", world.token),
        world.mcp_call("write_repo", world.token),
    ]
    assert answers == [Answer(403, "ACTION_OUT_OF_SCOPE", SCOPE)] * 4
    # A listing is not a denial: a valid mandate sees the tools it may call, maybe none.
    assert world.mcp("tools/list", world.token, server="empty") == Answer(200, None, None)
    # No declared action matches: refused before any mandate could allow it, also 403.
    for answer in (
        world.gateway("DELETE", "/repos", world.token),
        world.forward_auth("DELETE", "/repos", world.token),
    ):
        assert answer == Answer(403, "ACTION_NOT_DECLARED", None)
