"""Mandates verify with two independent JOSE libraries, joserfc and PyJWT, against the JWK Set
a live `caracal serve` publishes; a token with any single byte of its header, payload or
signature altered verifies with neither."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from joserfc import jws
from joserfc.jwk import KeySet

from caracal.core.keys import b64url, b64url_decode
from tests.support.cli import Result, run_cli
from tests.support.runtime import serve

pytestmark = pytest.mark.timeout(180)

Verifier = Callable[[str], dict[str, Any]]


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@pytest.fixture
def served(home: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """A mandate and the JWK Set served by a live runtime."""
    ok(run_cli("workspace", "create", "jose"))
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
    with serve() as server:
        reply = httpx.get(server.url + "/.well-known/jwks.json", timeout=30)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/")
        yield str(issued["token"]), reply.json()


def _pyjwt(jwks: dict[str, Any]) -> Verifier:
    keys = jwt.PyJWKSet.from_dict(jwks)

    def verify(token: str) -> dict[str, Any]:
        kid = jwt.get_unverified_header(token)["kid"]
        key = next(k for k in keys.keys if k.key_id == kid)
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["ES256"], options={"verify_aud": False}
        )
        return claims

    return verify


def _joserfc(jwks: dict[str, Any]) -> Verifier:
    keys = KeySet.import_key_set(jwks)

    def verify(token: str) -> dict[str, Any]:
        # The compact JWS, verified against the key its `kid` names (ES256 only).
        found = jws.deserialize_compact(token, keys, algorithms=["ES256"])
        claims: dict[str, Any] = json.loads(found.payload)
        return claims

    return verify


def _altered(token: str) -> Iterator[tuple[str, str]]:
    """(where, token) for every byte of every part flipped in turn, re-encoded."""
    parts = token.split(".")
    for index, name in enumerate(("header", "payload", "signature")):
        raw = b64url_decode(parts[index])
        for at in range(len(raw)):
            changed = bytearray(raw)
            changed[at] ^= 0x01
            copy = list(parts)
            copy[index] = b64url(bytes(changed))
            yield f"{name} byte {at}", ".".join(copy)


def _verifies(verify: Verifier, token: str) -> bool:
    try:
        verify(token)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("library", ["joserfc", "pyjwt"])
def test_a_mandate_verifies_against_the_served_jwks(
    served: tuple[str, dict[str, Any]], library: str
) -> None:
    token, jwks = served
    assert jwks["keys"] and all(
        (k["kty"], k["crv"], k["use"], k["alg"]) == ("EC", "P-256", "sig", "ES256") and k["kid"]
        for k in jwks["keys"]
    )
    verify = (_joserfc if library == "joserfc" else _pyjwt)(jwks)
    claims = verify(token)
    expected = json.loads(b64url_decode(token.split(".")[1]))
    assert claims == expected
    assert "provider:api:action:read" in json.dumps(claims)


@pytest.mark.parametrize("library", ["joserfc", "pyjwt"])
def test_a_token_altered_anywhere_verifies_with_neither_library(
    served: tuple[str, dict[str, Any]], library: str
) -> None:
    token, jwks = served
    verify = (_joserfc if library == "joserfc" else _pyjwt)(jwks)
    assert _verifies(verify, token)
    altered = list(_altered(token))
    assert {where.split()[0] for where, _ in altered} == {"header", "payload", "signature"}
    accepted = [where for where, bad in altered if _verifies(verify, bad)]
    assert accepted == []
    # Nor does a key set without the key its `kid` names.
    other = dict(jwks, keys=[dict(k, kid=k["kid"] + "x") for k in jwks["keys"]])
    assert not _verifies((_joserfc if library == "joserfc" else _pyjwt)(other), token)
