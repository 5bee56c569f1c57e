"""What offline verifiers read from a live `caracal serve`: the JWK Set (which an independent
JOSE library, PyJWT, verifies mandates with) and the signed revocation feed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

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
        f"{header[:-2]}AA.{payload}.{signature}",
        f"{header}.{payload[:-2]}AA.{signature}",
        f"{header}.{payload}.{signature[:-2]}AA",
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
