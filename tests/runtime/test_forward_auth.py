"""Forward authentication end to end: an agent calls through Debian's nginx, which asks
`caracal serve` (`auth_request`) before proxying to a provider that records what reaches it;
and the headers Traefik's forwardAuth and Envoy's ext_authz send, straight to Caracal."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
from tests.conftest import _require_postgres
from tests.runtime.provider_upstream import ProviderUpstream, provider_upstream
from tests.support.cli import Result, run_cli
from tests.support.postgres import scratch_database
from tests.support.runtime import Server, free_port, serve

pytestmark = pytest.mark.timeout(180)

WS = "fa"
NGINX_SECRET = "held-by-nginx-41a7"
INJECTED_SECRET = "held-by-caracal-released-8e0c"
READ = "provider:api:action:read"
REPOS = "provider:api:resource:repos"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user}
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /api/ {{
            auth_request /_caracal;
            auth_request_set $caracal_decision $upstream_http_x_caracal_decision;
            auth_request_set $caracal_reason $upstream_http_x_caracal_reason;
            add_header X-Caracal-Decision $caracal_decision always;
            add_header X-Caracal-Reason $caracal_reason always;
            proxy_set_header Authorization "Bearer {secret}";
            proxy_pass http://127.0.0.1:{upstream}/base/;
        }}
        location /injected/ {{
            auth_request /_caracal;
            auth_request_set $caracal_credential $upstream_http_x_caracal_credential;
            proxy_set_header Authorization $caracal_credential;
            proxy_pass http://127.0.0.1:{upstream}/injected/;
        }}
        location = /_caracal {{
            internal;
            proxy_pass {caracal}/v1/forward-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
}}
"""


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@dataclass
class World:
    server: Server
    upstream: ProviderUpstream
    nginx: str
    token: str


def decision(decision_id: str) -> dict[str, Any]:
    with Caracal.open(WS) as app:
        found = [
            e
            for e in app.ledger.events(LedgerFilter(), limit=None)
            if e["payload"].get("decision_id") == decision_id
        ]
    assert len(found) == 1, (decision_id, found)
    return found[0]


@contextlib.contextmanager
def running_nginx(workdir: Path, caracal: str, upstream: int) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is not installed (.ci/run installs nginx-light)"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=workdir,
            user="user root;" if os.geteuid() == 0 else "",
            port=port,
            secret=NGINX_SECRET,
            upstream=upstream,
            caracal=caracal,
        )
    )
    process = subprocess.Popen(
        [binary, "-p", str(workdir), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (workdir / "error.log").read_text()
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    base = tmp_path_factory.mktemp("forward-auth")
    with pytest.MonkeyPatch.context() as env, contextlib.ExitStack() as stack:
        env.setenv("CARACAL_HOME", str(base / "home"))
        env.setenv("CARACAL_KEYRING", "off")
        env.setenv("API_TOKEN", "held-by-caracal-unused-here")
        env.setenv("INJECTED_TOKEN", INJECTED_SECRET)
        for var in ("CARACAL_WORKSPACE", "CARACAL_STORE_URL", "CARACAL_MASTER_KEY"):
            env.delenv(var, raising=False)
        env.delenv("CARACAL_REDIS_URL", raising=False)
        if request.param == "postgresql":
            _require_postgres()
            env.setenv("CARACAL_STORE_URL", stack.enter_context(scratch_database()))
        upstream = stack.enter_context(provider_upstream())
        ok(run_cli("workspace", "create", WS))
        ok(
            run_cli(
                "provider", "add", "api", "--base-url", upstream.url + "/base",
                "--auth", "bearer", "--credential-env", "API_TOKEN", "--resource", "repos",
                "--action", "repos:read:GET:/repos", "--action", "repos:write:POST:/repos",
            )
        )  # fmt: skip
        ok(run_cli("provider", "add", "injected", "--base-url", upstream.url + "/injected",
                   "--auth", "bearer", "--credential-env", "INJECTED_TOKEN",
                   "--resource", "repos", "--action", "repos:read:GET:/repos"))  # fmt: skip
        ok(run_cli("config", "set", "runtime.gateway.forward_auth_credential", "injected"))
        ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
        ok(run_cli("principal", "register", "--kind", "worker", "--name", "agent"))
        ok(run_cli("policy", "create", "--principal", "agent", "--max-validity", "1h",
                   "--resource", "provider:api:resource:*", "--action", "provider:api:action:*",
                   "--resource", "provider:injected:resource:*",
                   "--action", "provider:injected:action:*"))  # fmt: skip
        issued = run_cli(
            "mandate", "issue", "--issuer", "alice", "--subject", "agent", "--ttl", "30m",
            "--resource", REPOS, "--action", READ,
            "--resource", "provider:injected:resource:repos",
            "--action", "provider:injected:action:read", "--json",
        )  # fmt: skip
        token = str(ok(issued).json()["token"])
        server = stack.enter_context(serve())
        nginx = stack.enter_context(running_nginx(base / "nginx", server.url, upstream.port))
        yield World(server, upstream, nginx, token)


def test_nginx_forwards_an_allowed_call_with_its_own_credential(world: World) -> None:
    before = len(world.upstream.received)
    reply = httpx.get(
        world.nginx + "/api/repos/acme?page=1",
        headers={"Authorization": f"Bearer {world.token}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    (got,) = world.upstream.received[before:]
    assert (got.method, got.path, got.query) == ("GET", "/base/repos/acme", "page=1")
    assert got.headers["authorization"] == f"Bearer {NGINX_SECRET}"
    recorded = decision(reply.headers["x-caracal-decision"])
    assert recorded["type"] == "validation.allowed"
    assert recorded["payload"]["action"] == READ


@pytest.mark.parametrize(
    ("method", "path", "token", "status", "reason"),
    [
        ("POST", "/api/repos", True, 403, "ACTION_OUT_OF_SCOPE"),
        ("GET", "/api/admin", True, 403, "ACTION_NOT_DECLARED"),
        ("GET", "/api/repos/x", False, 401, "TOKEN_MISSING"),
    ],
)
def test_nginx_never_forwards_a_refused_call(
    world: World, method: str, path: str, token: bool, status: int, reason: str
) -> None:
    before = len(world.upstream.received)
    headers = {"Authorization": f"Bearer {world.token}"} if token else {}
    reply = httpx.request(method, world.nginx + path, headers=headers, content=b"{}", timeout=30)
    assert reply.status_code == status, reply.text
    assert reply.headers["x-caracal-reason"] == reason
    assert len(world.upstream.received) == before, "a refused call reached the provider"
    if token:
        recorded = decision(reply.headers["x-caracal-decision"])
        assert recorded["reason_code"] == reason
        assert recorded["payload"]["source"] == "forward-auth"


def test_traefik_and_envoy_headers_name_the_original_call(world: World) -> None:
    auth = {"Authorization": f"Bearer {world.token}"}
    traefik = httpx.get(
        world.server.url + "/v1/forward-auth",
        headers={
            **auth,
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Uri": "/repos/acme?x=1",
            "X-Caracal-Provider": "api",
        },
        timeout=30,
    )
    assert traefik.status_code == 200, traefik.text
    assert traefik.headers["x-caracal-decision"] == traefik.json()["decision_id"]
    assert traefik.headers["x-caracal-mandate"] == traefik.json()["mandate_id"]
    envoy = httpx.post(world.server.url + "/v1/forward-auth/api/repos", headers=auth, timeout=30)
    assert envoy.status_code == 403
    assert envoy.headers["x-caracal-reason"] == "ACTION_OUT_OF_SCOPE"


def test_an_opted_in_provider_s_credential_is_released_to_nginx_only(world: World) -> None:
    auth = {"Authorization": f"Bearer {world.token}"}
    before = len(world.upstream.received)
    reply = httpx.get(world.nginx + "/injected/repos/x", headers=auth, timeout=30)
    assert reply.status_code == 200, reply.text
    (got,) = world.upstream.received[before:]
    assert got.headers["authorization"] == f"Bearer {INJECTED_SECRET}"
    assert INJECTED_SECRET not in str(reply.headers) + reply.text
    # A provider not opted in: an allowed answer carries no credential.
    plain = httpx.get(world.server.url + "/v1/forward-auth/api/repos/x", headers=auth, timeout=30)
    assert plain.status_code == 200
    assert "x-caracal-credential" not in plain.headers
    assert plain.headers["cache-control"] == "no-store"
