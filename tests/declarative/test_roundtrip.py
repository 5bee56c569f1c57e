"""Export, apply to an empty workspace on the other backend, export again: the same file."""

from __future__ import annotations

from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.declarative.conftest import GH_ENV, GH_TOKEN, build_source, cli, ok, other_backend
from tests.support.cli import run_cli


def test_round_trip_across_backends(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GH_ENV, GH_TOKEN)
    build_source("src")
    first = tmp_path / "state.yaml"
    ok(cli("src", "export", "--output", str(first)))
    text = first.read_text()
    # An existing file is replaced only with --force.
    assert cli("src", "export", "--output", str(first)).code == ExitCode.CONFLICT
    ok(cli("src", "export", "--output", str(first), "--force"))
    assert first.read_text() == text
    assert GH_TOKEN not in text
    assert "credential_env: CARACAL_GITHUB_CREDENTIAL" in text
    assert "# Left out on purpose:" in text
    assert "validation.clock_leeway_seconds: 45" in text
    assert "hunter2" not in text and "redis_url" not in text  # the host's, and a secret
    # The source itself has nothing to apply.
    assert ok(cli("src", "plan", "-f", str(first), "--detailed-exitcode")).stdout.startswith(
        "No changes"
    )

    monkeypatch.setenv("CARACAL_GITHUB_CREDENTIAL", "another-token-for-the-copy")
    with other_backend(backend, monkeypatch) as options:
        ok(run_cli("workspace", "create", "dst", *options))
        applied = ok(cli("dst", "apply", "-f", str(first), "--yes"))
        assert "Applied:" in applied.stdout
        second = ok(cli("dst", "export")).stdout
        assert second.replace("workspace dst", "workspace src") == text
        assert ok(cli("dst", "plan", "-f", str(first), "--detailed-exitcode")).code == 0
        # The copy is a working workspace: its provider holds the credential from the env,
        # its ledger verifies, and a mandate can be issued under an applied policy.
        shown = ok(cli("dst", "provider", "show", "github", "--json")).json()
        assert shown["credential"] == "set"
        ok(cli("dst", "ledger", "verify"))
        assert ok(cli("dst", "config", "get", "validation.clock_leeway_seconds")).stdout == "45\n"
        ok(
            cli(
                "dst",
                "mandate",
                "issue",
                "--issuer",
                "alice",
                "--subject",
                "w1",
                "--resource",
                "provider:github:resource:repos",
                "--action",
                "provider:github:action:read",
                "--ttl",
                "10m",
            )
        )
