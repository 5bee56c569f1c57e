"""`caracal tool ...` and the ToolService, end to end on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.core.errors import NotFoundError
from caracal.services.facade import Caracal
from tests.support.cli import Result, run_cli

READ = "provider:files:action:read"
WRITE = "provider:files:action:write"
DOCS = "provider:files:resource:docs"
MCP_PROVIDER = [
    "provider", "add", "files", "--service-type", "mcp",
    "--base-url", "http://127.0.0.1:8931/mcp",
    "--resource", "docs=Documents", "--resource", "logs",
    "--action", "docs:read", "--action", "docs:write", "--action", "logs:tail",
]  # fmt: skip


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


def register(name: str, *extra: str, resource: str = DOCS, action: str = READ) -> Result:
    args = ["tool", "register", name, "--resource", resource, "--action", action, *extra]
    return run_cli(*(args if "--server" in extra else [*args, "--server", "files"]))


@pytest.fixture
def workspace(backend: str, home: Path) -> Path:
    ok(run_cli("workspace", "create", "demo"))
    ok(run_cli(*MCP_PROVIDER))
    return home / "workspaces" / "demo"


def test_register_list_and_remove_are_recorded(workspace: Path) -> None:
    added = ok(register("read_doc", "--description", "Read one document", "--json")).json()
    assert added | {"created_at": 0} == {
        "name": "read_doc",
        "server": "files",
        "resource": DOCS,
        "action": READ,
        "description": "Read one document",
        "created_at": 0,
    }
    ok(register("write_doc", action=WRITE))
    listed = ok(run_cli("tool", "list", "--json")).json()
    assert [t["name"] for t in listed] == ["read_doc", "write_doc"]
    lines = ok(run_cli("tool", "list")).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SERVER", "RESOURCE", "ACTION", "DESCRIPTION"]
    assert lines[1].split() == ["read_doc", "files", DOCS, READ, "Read", "one", "document"]

    refused = run_cli("tool", "remove", "read_doc")
    assert refused.code == ExitCode.REFUSED and "--yes" in refused.stderr
    ok(run_cli("tool", "remove", "read_doc", "--yes"))
    assert [t["name"] for t in ok(run_cli("tool", "list", "--json")).json()] == ["write_doc"]

    events = ok(run_cli("ledger", "list", "--type", "tool.", "--json")).json()
    assert [(e["type"], e["payload"]["name"]) for e in events] == [
        ("tool.registered", "read_doc"),
        ("tool.registered", "write_doc"),
        ("tool.removed", "read_doc"),
    ]
    assert events[-1]["payload"]["action"] == READ
    ok(run_cli("ledger", "verify"))


INVALID = [
    ("Read Doc", (), DOCS, READ, ExitCode.INVALID, "Invalid tool name"),
    ("t", ("--server", "nosuch"), DOCS, READ, ExitCode.NOT_FOUND, "does not exist"),
    ("t", ("--server", "plain"), DOCS, READ, ExitCode.INVALID, "not 'mcp'"),
    ("t", (), "docs", READ, ExitCode.INVALID, "Invalid scope"),
    ("t", (), READ, READ, ExitCode.INVALID, "expected a resource scope"),
    ("t", (), DOCS, DOCS, ExitCode.INVALID, "expected a action scope"),
    ("t", (), "provider:files:resource:*", READ, ExitCode.INVALID, "Invalid scope"),
    ("t", (), "provider:files:resource:nope", READ, ExitCode.INVALID, "not in this"),
    ("t", (), DOCS, "provider:files:action:delete", ExitCode.INVALID, "not in this"),
    ("t", (), "provider:plain:resource:x", READ, ExitCode.INVALID, "of provider 'plain'"),
    ("t", ("--description", "x" * 1001), DOCS, READ, ExitCode.INVALID, "description"),
]


def test_invalid_registrations_are_one_line_errors(workspace: Path) -> None:
    ok(run_cli("provider", "add", "plain", "--base-url", "http://127.0.0.1:9/api"))
    for name, extra, resource, action, code, words in INVALID:
        result = register(name, *extra, resource=resource, action=action)
        assert result.code == code, (name, extra, resource, action, result)
        assert words in result.stderr and result.stderr.count("\n") == 1, result
    assert ok(run_cli("tool", "list", "--json")).json() == []


def test_duplicates_and_unknown_tools(workspace: Path) -> None:
    ok(register("read_doc"))
    again = register("read_doc", action=WRITE)
    assert again.code == ExitCode.CONFLICT and "already registered" in again.stderr
    assert run_cli("tool", "remove", "nope", "--yes").code == ExitCode.NOT_FOUND
    assert run_cli("tool", "list", "--server", "nope").code == ExitCode.NOT_FOUND
    ok(run_cli("tool", "remove", "read_doc", "--yes"))
    assert "No tools yet" in ok(run_cli("tool", "list", "--server", "files")).stdout


def test_list_filters_by_server_and_removing_the_provider_removes_its_tools(
    workspace: Path,
) -> None:
    ok(run_cli(*[a.replace("files", "wiki") for a in MCP_PROVIDER]))
    ok(register("read_doc"))
    wiki = {"resource": "provider:wiki:resource:docs", "action": "provider:wiki:action:read"}
    ok(register("read_page", "--server", "wiki", **wiki))
    by_server = ok(run_cli("tool", "list", "--server", "wiki", "--json")).json()
    assert [t["name"] for t in by_server] == ["read_page"]
    ok(run_cli("provider", "remove", "wiki", "--yes"))
    assert [t["name"] for t in ok(run_cli("tool", "list", "--json")).json()] == ["read_doc"]


def test_the_gate_view_of_a_server(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILES_TOKEN", "s3cret-upstream")
    ok(
        run_cli(
            "provider", "update", "files", "--auth", "bearer", "--credential-env", "FILES_TOKEN"
        )
    )
    ok(register("read_doc"))
    ok(run_cli("provider", "add", "plain", "--base-url", "http://127.0.0.1:9/api"))
    with Caracal.open() as app:
        served = app.tools.mcp_server("files")
        assert served.url == "http://127.0.0.1:8931/mcp"
        assert list(served.tools) == ["read_doc"] and served.tools["read_doc"].action == READ
        assert app.tools.upstream_headers("files") == {"Authorization": "Bearer s3cret-upstream"}
        for missing in ("plain", "nosuch"):
            with pytest.raises(NotFoundError):
                app.tools.mcp_server(missing)
        before = served.revision
    ok(run_cli("provider", "update", "files", "--base-url", "http://127.0.0.1:8932/mcp"))
    with Caracal.open() as app:
        assert app.tools.mcp_server("files").revision != before


def test_tools_survive_a_backup_and_restore(workspace: Path, tmp_path: Path) -> None:
    ok(register("read_doc", "--description", "Read"))
    archive = tmp_path / "demo.tar.gz"
    ok(run_cli("backup", "create", "--output", str(archive)))
    ok(run_cli("backup", "restore", str(archive), "--as", "copy"))
    restored = ok(run_cli("-w", "copy", "tool", "list", "--json")).json()
    assert [(t["name"], t["description"]) for t in restored] == [("read_doc", "Read")]


def test_a_tool_maps_to_a_declared_pair(workspace: Path) -> None:
    """`tail` is declared on logs, not on docs: a tool for (docs, tail) would grant a pair
    nobody declared, and every mandate for docs and tail (on logs) would call it."""
    refused = register("tail_docs", action="provider:files:action:tail")
    assert refused.code == ExitCode.INVALID and "declared" in refused.stderr, refused
    assert ok(run_cli("tool", "list", "--json")).json() == []
    logs = "provider:files:resource:logs"
    assert register("tail_logs", resource=logs, action="provider:files:action:tail").code == 0
