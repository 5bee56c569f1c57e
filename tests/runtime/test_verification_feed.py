"""What offline verifiers read from a live `caracal serve`: the JWK Set (which an independent
JOSE library, PyJWT, verifies mandates with) and the signed revocation feed."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from caracal.client import Client, Denied, guard, verify_offline
from caracal.core.canonical import canonical_bytes
from caracal.core.keys import b64url_decode, verify
from tests.conftest import _require_postgres
from tests.support.cli import Result, run_cli
from tests.support.postgres import scratch_database
from tests.support.runtime import Server, serve

pytestmark = pytest.mark.timeout(180)


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@dataclass
class World:
    server: Server
    token: str
    mandate_id: str

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.server.url + path, timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as env, contextlib.ExitStack() as stack:
        env.setenv("CARACAL_HOME", str(tmp_path / "home"))
        env.setenv("CARACAL_KEYRING", "off")
        for var in ("CARACAL_WORKSPACE", "CARACAL_STORE_URL", "CARACAL_MASTER_KEY"):
            env.delenv(var, raising=False)
        env.delenv("CARACAL_REDIS_URL", raising=False)
        if request.param == "postgresql":
            _require_postgres()
            env.setenv("CARACAL_STORE_URL", stack.enter_context(scratch_database()))
        ok(run_cli("workspace", "create", "vf"))
        ok(run_cli("provider", "add", "api", "--base-url", "http://127.0.0.1:9",
                   "--resource", "repos", "--action", "repos:read"))  # fmt: skip
        ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
        ok(run_cli("principal", "register", "--kind", "worker", "--name", "agent"))
        ok(run_cli("policy", "create", "--principal", "agent", "--max-validity", "1h",
                   "--resource", "provider:api:resource:*", "--action", "provider:api:action:*"))  # fmt: skip
        issued = ok(
            run_cli(
                "mandate", "issue", "--issuer", "alice", "--subject", "agent", "--ttl", "30m",
                "--resource", "provider:api:resource:repos",
                "--action", "provider:api:action:read", "--json",
            )
        ).json()  # fmt: skip
        server = stack.enter_context(serve())
        yield World(server, str(issued["token"]), str(issued["id"]))


def _feed(world: World, since: int) -> dict[str, Any]:
    reply = world.get(f"/v1/revocations?since={since}")
    assert reply.status_code == 200, reply.text
    feed: dict[str, Any] = reply.json()
    body = {k: v for k, v in feed.items() if k != "signature"}
    signature = feed["signature"]
    key = jwt.PyJWK(signature["key"]).key
    assert verify(key, canonical_bytes(body), b64url_decode(signature["value"]))
    return feed


def _altered(part: str) -> str:
    """`part` with one character in its middle changed: always other bytes (a changed last
    character can spell the same bytes, or be the one it replaces)."""
    at = len(part) // 2
    return part[:at] + ("B" if part[at] == "A" else "A") + part[at + 1 :]


def test_mandates_verify_with_an_independent_library_against_the_jwks(world: World) -> None:
    reply = world.get("/.well-known/jwks.json")
    assert reply.status_code == 200
    keys = reply.json()["keys"]
    assert keys and all(k["use"] == "sig" and k["alg"] == "ES256" for k in keys)
    assert {k["status"] for k in keys} == {"active"}
    kid = jwt.get_unverified_header(world.token)["kid"]
    (jwk,) = [k for k in keys if k["kid"] == kid]
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(world.token, key, algorithms=["ES256"], options={"verify_aud": False})
    assert world.mandate_id in str(claims)
    header, payload, signature = world.token.split(".")
    for altered in (
        f"{_altered(header)}.{payload}.{signature}",
        f"{header}.{_altered(payload)}.{signature}",
        f"{header}.{payload}.{_altered(signature)}",
    ):
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(altered, key, algorithms=["ES256"], options={"verify_aud": False})


def test_the_revocation_feed_is_signed_and_names_what_was_revoked_since(world: World) -> None:
    first = _feed(world, 0)
    assert first["revoked_mandates"] == [] and first["revoked_keys"] == []
    ok(run_cli("mandate", "revoke", world.mandate_id, "--yes"))
    ok(run_cli("principal", "rotate-key", "alice", "--revoke-old", "--yes"))
    later = _feed(world, first["until"])
    assert later["revoked_mandates"] == [world.mandate_id]
    kid = jwt.get_unverified_header(world.token)["kid"]
    assert later["revoked_keys"] == [kid]
    assert later["until"] > first["until"]
    assert _feed(world, later["until"])["revoked_mandates"] == []
    keys = world.get("/.well-known/jwks.json").json()["keys"]
    assert kid not in {k["kid"] for k in keys}
    assert world.get("/v1/revocations?since=-1").status_code == 400


# ---- caracal.client against the same live server -------------------------------------------

READ = "provider:api:action:read"
REPOS = "provider:api:resource:repos"


def test_the_client_module_needs_no_store_ui_or_docker() -> None:
    code = (
        "import sys, caracal.client; "
        "bad = [m for m in ('sqlalchemy', 'textual', 'docker', 'typer', 'rich', "
        "'caracal.store', 'caracal.services', 'caracal.server') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_client_authorizes_and_guards_sync_and_async_tools(world: World) -> None:
    client = Client(world.server.url, world.token)
    assert client.authorize(READ, REPOS).allowed
    denied = client.authorize("provider:api:action:write", REPOS)
    assert (denied.allowed, denied.reason_code) == (False, "ACTION_OUT_OF_SCOPE")
    assert world.token not in repr(client)
    calls: list[str] = []

    @guard(action=READ, resource=REPOS, client=client)
    def read(name: str) -> str:
        calls.append(name)
        return name

    @guard(action="provider:api:action:write", resource=REPOS, client=client)
    async def write(name: str) -> str:
        calls.append(name)
        return name

    assert read("a") == "a"
    with pytest.raises(Denied) as caught:
        asyncio.run(write("b"))
    assert caught.value.reason_code == "ACTION_OUT_OF_SCOPE" and caught.value.decision_id
    assert calls == ["a"]
    unreachable = Client("http://127.0.0.1:9", world.token).authorize(READ, REPOS)
    assert (unreachable.allowed, unreachable.reason_code) == (False, "RUNTIME_UNAVAILABLE")
    # Through the gateway: allowed, then the provider (nobody at :9) is unreachable.
    reply = client.request("GET", "api", "/repos/x")
    assert reply.status == 502 and reply.decision_id


def test_verify_offline_applies_what_it_can_and_names_what_it_cannot(world: World) -> None:
    jwks = world.get("/.well-known/jwks.json").json()
    feed = _feed(world, 0)
    pinned = feed["signature"]["key"]
    verdict = verify_offline(world.token, jwks, feed, READ, REPOS, ledger_key=pinned)
    assert verdict.allowed and verdict.mandate_id == world.mandate_id
    assert "DELEGATION_CHAIN_INVALID" in verdict.unchecked
    wrong = verify_offline(world.token, jwks, feed, "provider:api:action:write", REPOS)
    assert wrong.reason_code == "ACTION_OUT_OF_SCOPE"
    header, payload, signature = world.token.split(".")
    altered = f"{header}.{payload}.{_altered(signature)}"
    assert not verify_offline(altered, jwks, feed, READ, REPOS).allowed
    assert verify_offline("x", jwks, feed, READ, REPOS).reason_code == "TOKEN_MALFORMED"
    later = time.time() + 7200
    assert verify_offline(world.token, jwks, feed, READ, REPOS, now=later).reason_code == (
        "MANDATE_EXPIRED"
    )
    ok(run_cli("mandate", "revoke", world.mandate_id, "--yes"))
    feeds = [feed, _feed(world, feed["until"])]
    revoked = verify_offline(world.token, jwks, feeds, READ, REPOS, ledger_key=pinned)
    assert revoked.reason_code == "MANDATE_REVOKED"
    forged = {**feeds[1], "revoked_mandates": []}
    with pytest.raises(ValueError, match="not signed"):
        verify_offline(world.token, jwks, [feed, forged], READ, REPOS, ledger_key=pinned)
