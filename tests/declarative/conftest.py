"""A workspace built through the real CLI, and helpers to write and plan state files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import _require_postgres
from tests.support.cli import Result, run_cli
from tests.support.postgres import scratch_database

GH_ENV = "CARACAL_TEST_DECL_GH_TOKEN"
GH_TOKEN = "not-a-real-token-0123456789"


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


def cli(workspace: str, *args: str) -> Result:
    return run_cli("--workspace", workspace, *args)


def build_source(name: str = "src") -> None:
    """Providers of each shape, principals of every kind and status, policies, a tool."""
    ok(run_cli("workspace", "create", name))
    ok(cli(name, "config", "set", "validation.clock_leeway_seconds", "45"))
    ok(cli(name, "config", "set", "runtime.redis_url", "redis://:hunter2@cache.internal:6379/0"))
    ok(
        cli(
            name,
            "provider",
            "add",
            "github",
            "--base-url",
            "https://api.github.com",
            "--auth",
            "bearer",
            "--credential-env",
            GH_ENV,
            "--resource",
            "repos=Repositories",
            "--resource",
            "issues",
            "--action",
            "repos:read:GET:/repos",
            "--action",
            "repos:write",
            "--action",
            "issues:comment",
        )
    )
    ok(cli(name, "provider", "add", "docs", "--base-url", "https://docs.example.com/v1"))
    ok(
        cli(
            name,
            "provider",
            "add",
            "files",
            "--service-type",
            "mcp",
            "--base-url",
            "http://127.0.0.1:9000/mcp",
            "--resource",
            "fs",
            "--action",
            "fs:read",
        )
    )
    for kind, principal, extra in [
        ("human", "alice", ("--email", "alice@example.com")),
        ("orchestrator", "orch", ()),
        ("worker", "w1", ()),
        ("worker", "w2", ()),
        ("service", "svc", ()),
    ]:
        ok(cli(name, "principal", "register", "--kind", kind, "--name", principal, *extra))
    ok(cli(name, "principal", "suspend", "w2", "--yes"))
    ok(cli(name, "principal", "revoke", "svc", "--yes"))
    for principal, validity, depth in [("orch", "1h", "2"), ("w1", "30m", "0"), ("w2", "90s", "0")]:
        ok(
            cli(
                name,
                "policy",
                "create",
                "--principal",
                principal,
                "--max-validity",
                validity,
                "--delegation-depth",
                depth,
                "--resource",
                "provider:github:resource:*",
                "--action",
                "provider:github:action:read",
            )
        )
    ok(
        cli(
            name,
            "tool",
            "register",
            "read_file",
            "--server",
            "files",
            "--resource",
            "provider:files:resource:fs",
            "--action",
            "provider:files:action:read",
            "--description",
            "Read one file",
        )
    )


@contextmanager
def other_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ...]]:
    """`workspace create` options that put a new workspace on the backend `backend` is not."""
    if backend == "sqlite":
        _require_postgres()
        with scratch_database() as url:
            yield ("--store-url", url)
        return
    monkeypatch.delenv("CARACAL_STORE_URL")
    yield ()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
