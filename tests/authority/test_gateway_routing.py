"""Which declared action a gateway call is, and which headers travel with it: pure rules."""

from __future__ import annotations

import pytest

from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec, select_action
from caracal.services.gateway import (
    GatewayRefused,
    GatewayTarget,
    inbound_headers,
    outbound_headers,
    outbound_url,
    route,
)

SPEC = ProviderSpec(
    "gh",
    "https://api.example.com/v3",
    auth="api-key",
    header_name="X-Key",
    resources=(ProviderResource("repos"), ProviderResource("issues")),
    actions=(
        ProviderAction("repos", "read", "GET", "/repos"),
        ProviderAction("repos", "readme", "GET", "/repos/readme/"),
        ProviderAction("repos", "any", "*", "/repos"),
        ProviderAction("issues", "list", "GET", "/"),
    ),
)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/repos", "read"),
        ("GET", "/repos/x", "read"),
        ("get", "/repos/x", "read"),
        ("GET", "/repos/readme/y", "readme"),  # the longest prefix
        ("GET", "/repos/readme", "read"),  # `/repos/readme/` covers what follows it only
        ("POST", "/repos/x", "any"),  # `*` when the method has no action of its own
        ("GET", "/reposx", "list"),  # a prefix covers segments, not characters
        ("DELETE", "/other", None),
    ],
)
def test_the_longest_prefix_within_the_method_selects_the_action(
    method: str, path: str, expected: str | None
) -> None:
    chosen = select_action(SPEC, method, path)
    assert (chosen.action_id if chosen else None) == expected


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/repos/../admin", "/repos/../admin"),
        ("/repos/./x", "/repos/./x"),
        ("/repos/a/b", "/repos/a%2Fb"),
        ("/repos/a\\b", "/repos/a%5cb"),
    ],
)
def test_paths_that_could_escape_their_prefix_are_not_declared(path: str, raw: str) -> None:
    with pytest.raises(GatewayRefused) as refused:
        route(GatewayTarget(SPEC, "k", False), "GET", path, raw)
    assert refused.value.reason_code == "ACTION_NOT_DECLARED"


def test_passthrough_needs_the_opt_in_and_then_is_the_whole_provider() -> None:
    open_spec = ProviderSpec("raw", "http://127.0.0.1:1")
    with pytest.raises(GatewayRefused) as refused:
        route(GatewayTarget(open_spec, None, False), "GET", "/x", "/x")
    assert refused.value.reason_code == "PASSTHROUGH_NOT_ENABLED"
    pair = route(GatewayTarget(open_spec, None, True), "GET", "/x", "/x")
    assert (pair.action, pair.resource) == ("provider:raw:action:all", "provider:raw:resource:all")


def test_the_mandate_and_hop_by_hop_headers_go_and_the_credential_comes() -> None:
    target = GatewayTarget(SPEC, "s3cret", False)
    sent = outbound_headers(
        target,
        [
            ("Authorization", "Bearer mandate"),
            ("X-Key", "forged"),
            ("Connection", "keep-alive, X-Drop"),
            ("X-Drop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Host", "caracal"),
            ("X-Caracal-Caller", "agent"),
            ("Accept", "application/json"),
        ],
    )
    assert sent == [("Accept", "application/json"), ("X-Key", "s3cret")]
    answered = inbound_headers(
        target, [("X-Echo", "key s3cret"), ("Content-Type", "text/plain"), ("Keep-Alive", "5")]
    )
    assert answered == [("Content-Type", "text/plain")]
    assert "s3cret" not in repr(target)


def test_an_api_key_in_the_query_replaces_any_the_agent_sent() -> None:
    spec = ProviderSpec(
        "q",
        "https://api.example.com/v1/",
        auth="api-key-query",
        header_name="key",
        resources=(ProviderResource("r"),),
        actions=(ProviderAction("r", "read", "GET", "/"),),
    )
    target = GatewayTarget(spec, "s e/cret", False)
    assert outbound_url(target, "/items/a%20b", "key=forged&page=2") == (
        "https://api.example.com/v1/items/a%20b?page=2&key=s+e%2Fcret"
    )
    assert outbound_url(target, "/x", "") == "https://api.example.com/v1/x?key=s+e%2Fcret"
    assert outbound_headers(target, [("Authorization", "Bearer m")]) == []


def test_provider_test_applies_an_api_key_query_the_same_way() -> None:
    from caracal.services.probe import probe
    from tests.support.http_server import fake_provider

    with fake_provider() as upstream:
        spec = ProviderSpec("q", upstream.url + "/v1", auth="api-key-query", health_path="/ping")
        assert probe(spec, "k&1", timeout=10).healthy
    assert upstream.requests[0]["path"] == "/v1/ping?api_key=k%261"


def test_a_credential_is_released_only_when_opted_in_and_to_a_listed_peer() -> None:
    from caracal.services.gateway import released_credential

    spec = ProviderSpec("b", "https://api.example.com", auth="bearer")
    opted = GatewayTarget(spec, "tok", False, credential_released=True)
    assert released_credential(opted, "127.0.0.1", ["127.0.0.1"]) == {
        "X-Caracal-Credential-Header": "Authorization",
        "X-Caracal-Credential": "Bearer tok",
    }
    assert released_credential(opted, "10.0.0.9", ["127.0.0.1"]) == {}
    assert released_credential(GatewayTarget(spec, "tok", False), "127.0.0.1", ["127.0.0.1"]) == {}
