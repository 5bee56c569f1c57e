"""`caracal provider ...` end to end on both backends."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.support.cli import run_cli
from tests.support.http_server import fake_provider

GITHUB = [
    "provider",
    "add",
    "github",
    "--base-url",
    "https://api.github.com",
    "--resource",
    "repos=Repositories",
    "--resource",
    "issues",
    "--action",
    "repos:read:GET:/repos",
    "--action",
    "repos:write:post:/repos",
    "--action",
    "issues:comment",
]


@pytest.fixture
def workspace(backend: str, home: Path) -> Path:
    assert run_cli("workspace", "create", "demo").code == 0
    return home / "workspaces" / "demo"


def test_scoped_provider_round_trip(workspace: Path) -> None:
    added = run_cli(*GITHUB, "--json")
    assert added.code == 0, added
    data = added.json()
    assert data["mode"] == "scoped" and data["credential"] == "none"
    assert [a["method"] for a in data["actions"]] == ["GET", "POST", "*"]
    listed = run_cli("provider", "list", "--json").json()
    assert [(p["name"], p["mode"], p["auth"]) for p in listed] == [("github", "scoped", "none")]
    assert run_cli("provider", "scopes", "--json").json() == [
        "provider:github:resource:issues",
        "provider:github:resource:repos",
        "provider:github:action:comment",
        "provider:github:action:read",
        "provider:github:action:write",
    ]
    shown = run_cli("provider", "show", "github")
    assert shown.code == 0 and "Repositories" in shown.stdout


def test_passthrough_provider_has_wildcard_catalog(workspace: Path) -> None:
    assert run_cli("provider", "add", "proxy", "--base-url", "http://10.0.0.1:8080/api").code == 0
    assert run_cli("provider", "scopes", "--provider", "proxy", "--json").json() == [
        "provider:proxy:resource:*",
        "provider:proxy:action:*",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base-url", "ftp://x"], "Invalid base URL"),
        (["--base-url", "http://u:p@x"], "must not hold credentials"),
        (["--base-url", "http://x", "--auth", "bearer"], "needs a credential"),
        (["--base-url", "http://x", "--auth", "magic"], "Unknown auth scheme"),
        (["--base-url", "http://x", "--resource", "repos"], "has no action"),
        (["--base-url", "http://x", "--resource", "r", "--action", "q:read"], "unknown resource"),
        (
            ["--base-url", "http://x", "--resource", "r", "--action", "r:read:FETCH"],
            "Invalid HTTP method",
        ),
        (
            ["--base-url", "http://x", "--resource", "r", "--action", "r:read:GET:repos"],
            "must start with '/'",
        ),
        (
            ["--base-url", "http://x", "--resource", "R!", "--action", "R!:read"],
            "Invalid resource id",
        ),
        (
            ["--base-url", "http://x", "--resource", "r", "--resource", "r", "--action", "r:a"],
            "listed twice",
        ),
        (["--base-url", "http://x", "--health-path", "health"], "must start with '/'"),
        (
            ["--base-url", "http://x", "--auth", "header", "--credential-env", "TOKEN"],
            "--header-name",
        ),
        (["--base-url", "http://x", "--credential-env", "TOKEN"], "auth scheme is 'none'"),
        (
            ["--base-url", "http://x", "--credential-env", "UNSET_VAR_X", "--auth", "bearer"],
            "not set",
        ),
    ],
)
def test_invalid_definitions_are_one_line_errors(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("TOKEN", "t0ken-value")
    result = run_cli("provider", "add", "p", *args)
    assert result.code == ExitCode.INVALID, result
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert run_cli("provider", "list", "--json").json() == []


def test_duplicate_and_missing_providers(workspace: Path) -> None:
    assert run_cli(*GITHUB).code == 0
    assert run_cli(*GITHUB).code == ExitCode.CONFLICT
    assert run_cli("provider", "show", "nope").code == ExitCode.NOT_FOUND
    assert run_cli("provider", "remove", "nope", "--yes").code == ExitCode.NOT_FOUND


def test_credentials_never_land_in_plaintext(
    workspace: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    secret = "sk-live-7f3a9c2e-canary-credential"
    monkeypatch.setenv("GH_TOKEN", secret)
    assert run_cli(*GITHUB, "--auth", "bearer", "--credential-env", "GH_TOKEN").code == 0
    stdin_secret = "stdin-canary-credential-0001"
    assert (
        run_cli(
            "provider",
            "add",
            "other",
            "--base-url",
            "http://x",
            "--auth",
            "api-key",
            "--credential-stdin",
            input=stdin_secret + "\n",
        ).code
        == 0
    )
    for path in home.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert secret.encode() not in blob, path
            assert stdin_secret.encode() not in blob, path
    if backend == "postgresql":
        from caracal.services.facade import Caracal

        with Caracal.open() as caracal, caracal.store.read() as conn:
            schema = caracal.config.store.pg_schema
            dump = (
                conn.exec_driver_sql(
                    f"SELECT string_agg(t::text, '|') FROM {schema}.secrets t"
                ).scalar()
                + conn.exec_driver_sql(
                    f"SELECT string_agg(t::text, '|') FROM {schema}.providers t"
                ).scalar()
            )
        assert secret not in dump and stdin_secret not in dump
    shown = run_cli("provider", "show", "github", "--json")
    assert secret not in shown.stdout and shown.json()["credential"] == "set"


def test_update_changes_fields_replaces_catalog_and_clears_credential(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", "abc")
    assert run_cli(*GITHUB, "--auth", "bearer", "--credential-env", "TOKEN").code == 0
    upd = run_cli("provider", "update", "github", "--base-url", "https://ghe.local", "--json")
    assert upd.code == 0 and upd.json()["base_url"] == "https://ghe.local"
    assert upd.json()["credential"] == "set"
    cat = run_cli(
        "provider", "update", "github", "--resource", "gists", "--action", "gists:read", "--json"
    )
    assert [r["id"] for r in cat.json()["resources"]] == ["gists"]
    refused = run_cli("provider", "update", "github", "--clear-credential")
    assert refused.code == ExitCode.INVALID and "needs a credential" in refused.stderr
    cleared = run_cli(
        "provider", "update", "github", "--auth", "none", "--clear-credential", "--json"
    )
    assert cleared.code == 0 and cleared.json()["credential"] == "none"


def test_remove_needs_confirmation_without_a_terminal(workspace: Path) -> None:
    assert run_cli(*GITHUB).code == 0
    assert run_cli("provider", "remove", "github").code == ExitCode.REFUSED
    assert run_cli("provider", "remove", "github", "--yes").code == 0
    assert run_cli("provider", "list", "--json").json() == []


def test_export_import_round_trip_without_secrets(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", "never-exported-secret")
    assert run_cli(*GITHUB, "--auth", "bearer", "--credential-env", "TOKEN").code == 0
    out = tmp_path / "github.json"
    assert run_cli("provider", "export", "github", str(out)).code == 0
    assert "never-exported-secret" not in out.read_text()
    exported = json.loads(out.read_text())
    assert exported["format"] == "caracal-provider/1"
    assert run_cli("provider", "import", str(out)).code == ExitCode.CONFLICT
    assert run_cli("provider", "remove", "github", "--yes").code == 0
    imported = run_cli("provider", "import", str(out))
    assert imported.code == 0 and "needs a credential" in imported.stderr
    again = run_cli("provider", "show", "github", "--json").json()
    assert again["credential"] == "missing"
    assert {k: v for k, v in again.items() if k != "credential"} == {
        k: v for k, v in exported.items() if k != "format"
    }
    replaced = run_cli(
        "provider", "import", str(out), "--replace", "--credential-env", "TOKEN", "--json"
    )
    assert replaced.code == 0 and replaced.json()["credential"] == "set"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": "x"}', "base_url"),
        ('{"name": "x", "base_url": "http://x", "extra": 1}', "unknown field"),
        ('{"format": "other/9", "name": "x", "base_url": "http://x"}', "unknown format"),
        ("[1, 2]", "JSON object"),
        ('{"name": "x", "base_url": "http://x", "resources": "r"}', "list of objects"),
    ],
)
def test_import_rejects_malformed_files(
    workspace: Path, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    result = run_cli("provider", "import", str(path))
    assert result.code == ExitCode.INVALID, result
    assert message in result.stderr


class TestProviderProbe:
    def test_healthy_with_auth_header_applied(
        self, workspace: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TOKEN", "good-token")
        with fake_provider(expected_auth="Bearer good-token") as server:
            add = [
                "provider",
                "add",
                "api",
                "--base-url",
                server.url,
                "--auth",
                "bearer",
                "--credential-env",
                "TOKEN",
                "--health-path",
                "/healthz",
            ]
            assert run_cli(*add).code == 0
            result = run_cli("provider", "test", "api", "--json")
        assert result.code == 0, result
        assert result.json()["healthy"] is True and result.json()["status"] == 200
        assert server.requests[-1]["path"] == "/healthz"
        assert server.requests[-1]["authorization"] == "Bearer good-token"

    def test_unhealthy_status_exits_non_zero(self, workspace: Path) -> None:
        with fake_provider(status=503) as server:
            assert run_cli("provider", "add", "api", "--base-url", server.url).code == 0
            result = run_cli("provider", "test", "api")
        assert result.code == ExitCode.UNAVAILABLE
        assert "unhealthy" in result.stdout and "503" in result.stdout

    def test_wrong_credential_is_reported_as_rejected(
        self, workspace: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TOKEN", "wrong")
        with fake_provider(expected_auth="right", auth_header="X-API-Key") as server:
            add = [
                "provider",
                "add",
                "api",
                "--base-url",
                server.url,
                "--auth",
                "api-key",
                "--credential-env",
                "TOKEN",
            ]
            assert run_cli(*add).code == 0
            result = run_cli("provider", "test", "api")
        assert server.requests[-1]["x-api-key"] == "wrong"
        assert result.code == ExitCode.UNAVAILABLE and "credential was rejected" in result.stdout

    def test_unreachable_exits_non_zero(self, workspace: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        assert run_cli("provider", "add", "api", "--base-url", f"http://127.0.0.1:{port}").code == 0
        result = run_cli("provider", "test", "api", "--timeout", "2")
        assert result.code == ExitCode.UNAVAILABLE and "unreachable" in result.stdout

    def test_basic_auth_is_encoded(self, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TOKEN", "user:pass")
        with fake_provider(expected_auth="Basic dXNlcjpwYXNz") as server:
            add = [
                "provider",
                "add",
                "api",
                "--base-url",
                server.url,
                "--auth",
                "basic",
                "--credential-env",
                "TOKEN",
            ]
            assert run_cli(*add).code == 0
            assert run_cli("provider", "test", "api").code == 0
