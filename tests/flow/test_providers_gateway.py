"""Providers: each provider's gateway address and the calls a live `caracal serve` gated for it."""

from __future__ import annotations

import httpx
import pytest

from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec
from caracal.services.facade import Caracal
from tests.flow.conftest import SIZE, ok, until
from tests.flow.test_providers import choose_row, open_providers, text_of
from tests.support.http_server import fake_provider
from tests.support.runtime import free_port, serve

pytestmark = pytest.mark.timeout(120)


def _billing(url: str) -> str:
    """A bearer provider `billing` at `url`, a worker `agent` and its mandate to read it."""
    with Caracal.open("demo") as caracal:
        caracal.providers.add(
            ProviderSpec(
                "billing",
                url,
                auth="bearer",
                resources=(ProviderResource("invoices"),),
                actions=(ProviderAction("invoices", "read", "GET", "/invoices"),),
            ),
            "upstream-secret",
        )
    ok("principal", "register", "--kind", "worker", "--name", "agent")
    ok("policy", "create", "--principal", "agent", "--max-validity", "1h",
       "--resource", "provider:billing:resource:*", "--action", "provider:billing:action:*")  # fmt: skip
    issued = ok(
        "mandate", "issue", "--issuer", "alice", "--subject", "agent", "--ttl", "30m",
        "--resource", "provider:billing:resource:invoices",
        "--action", "provider:billing:action:read", "--json",
    )  # fmt: skip
    return str(issued.json()["token"])


async def test_the_gateway_url_and_recent_gated_calls_of_the_selected_provider(  # type: ignore[no-untyped-def]
    world, app_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_provider(expected_auth="Bearer upstream-secret") as api:
        token = _billing(api.url)
        with serve() as server:
            bearer = {"Authorization": f"Bearer {token}"}
            base = f"{server.url}/v1/providers"
            with httpx.Client(timeout=30) as http:
                assert http.get(f"{base}/billing/invoices/7", headers=bearer).status_code == 200
                assert http.get(f"{base}/billing/admin", headers=bearer).status_code == 403
                assert http.get(f"{base}/billing/invoices/8").status_code == 401
                # Neither of these is a gated call of billing.
                assert http.get(f"{base}/github/repos/x", headers=bearer).status_code == 403
                assert (
                    server.authorize(
                        token=token,
                        action="provider:billing:action:read",
                        resource="provider:billing:resource:invoices",
                    ).status
                    == 200
                )
            assert [r["path"] for r in api.requests] == ["/invoices/7"]
            monkeypatch.setenv("CARACAL_RUNTIME_URL", server.url)

            app = app_factory()
            async with app.run_test(size=SIZE) as pilot:
                await open_providers(pilot)
                await choose_row(pilot, "billing")
                await until(
                    pilot, lambda: "Recent gated calls" in text_of(app, "#gateway"), what="calls"
                )
                shown = text_of(app, "#gateway")
                assert f"{server.url}/v1/providers/billing/" in shown
                assert "No runtime answers" not in shown
                calls = shown.split("Recent gated calls")[1].strip().splitlines()[1:]
                # The call without a token names nobody: counted in aggregate, if at all yet.
                anonymous = [c for c in calls if "agent" not in c]
                assert all("TOKEN_MISSING" in c for c in anonymous), shown
                newest, oldest = [c for c in calls if "agent" in c]
                assert "agent" in newest and "GET /admin" in newest
                assert "denied" in newest and "ACTION_NOT_DECLARED" in newest
                assert "agent" in oldest and "GET /invoices/7" in oldest
                assert "allowed" in oldest
                assert "github" not in shown and "RESOURCE" not in shown

                await choose_row(pilot, "github")
                await until(
                    pilot,
                    lambda: "ACTION_OUT_OF_SCOPE" in text_of(app, "#gateway"),
                    what="github's gated call",
                )
                shown = text_of(app, "#gateway")
                assert "GET /repos/x" in shown and "billing" not in shown


async def test_without_a_runtime_the_screen_says_how_to_start_one(  # type: ignore[no-untyped-def]
    world, app_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARACAL_RUNTIME_URL", raising=False)
    port = free_port()  # nothing listens there
    ok("config", "set", "runtime.port", str(port))
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await open_providers(pilot)
        await choose_row(pilot, "github")
        await until(pilot, lambda: "caracal serve" in text_of(app, "#gateway"), what="hint")
        shown = text_of(app, "#gateway")
        assert f"http://127.0.0.1:{port}/v1/providers/github/" in shown
        assert f"No runtime answers at http://127.0.0.1:{port}" in shown
        assert f"`caracal serve --port {port}`" in shown
