"""Inputs with a size limit (provider files, config values, intents), each refused in one
clear line with nothing written; and `ledger export --output` aimed at special files."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.core.canonical import MAX_INTENT_BYTES
from caracal.core.providers import MAX_ACTIONS, MAX_DESCRIPTION_CHARS
from caracal.services.config_service import MAX_VALUE_BYTES
from tests.runtime.test_authorize import READ, REPOS, make_workspace
from tests.support.cli import Result, run_cli, run_cli_process

pytestmark = pytest.mark.timeout(120)


def refused(result: Result, *needles: str) -> None:
    assert result.code == int(ExitCode.INVALID), result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result
    for needle in needles:
        assert needle in lines[0], result


@pytest.fixture
def workspace(home: Path) -> Path:
    make_workspace("demo")
    return home / "workspaces" / "demo"


def _provider_file(tmp_path: Path, actions: int, description: str = "") -> Path:
    spec = {
        "name": "huge",
        "base_url": "https://api.example.com",
        "resources": [{"id": "things", "description": description}],
        "actions": [{"resource": "things", "id": f"a{i}"} for i in range(actions)],
    }
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_provider_with_too_many_actions_is_refused(workspace: Path, tmp_path: Path) -> None:
    refused(
        run_cli("provider", "import", str(_provider_file(tmp_path, 100_000))),
        f"at most {MAX_ACTIONS:,} actions",
    )
    assert "huge" not in run_cli("provider", "list").stdout
    # At the limit it is accepted.
    assert run_cli("provider", "import", str(_provider_file(tmp_path, MAX_ACTIONS))).code == 0


def test_a_huge_description_is_refused(workspace: Path, tmp_path: Path) -> None:
    refused(
        run_cli("provider", "import", str(_provider_file(tmp_path, 1, "d" * 50_000_000))),
        "too big to be a provider file",
    )
    refused(
        run_cli("provider", "import", str(_provider_file(tmp_path, 1, "d" * 5000))),
        f"over {MAX_DESCRIPTION_CHARS:,} characters",
    )
    assert "huge" not in run_cli("provider", "list").stdout


def test_a_config_value_over_the_limit_is_refused(workspace: Path) -> None:
    before = (workspace / "config.yaml").read_bytes()
    refused(
        run_cli("config", "set", "runtime.host", "--stdin", input="h" * 10_000_000),
        f"over {MAX_VALUE_BYTES:,} bytes",
    )
    assert (workspace / "config.yaml").read_bytes() == before


def test_an_intent_over_the_limit_is_refused(workspace: Path) -> None:
    big = json.dumps({"document": "x" * (MAX_INTENT_BYTES + 1)})
    before = run_cli("mandate", "list", "--json").json()
    result = run_cli(
        "mandate", "issue", "--issuer", "alice", "--subject", "orch", "--ttl", "10m",
        "--resource", REPOS, "--action", READ, "--intent", big,
    )  # fmt: skip
    refused(result, "intent", f"{MAX_INTENT_BYTES:,}-byte")
    assert run_cli("mandate", "list", "--json").json() == before


# ---- ledger export to special files -----------------------------------------------------------
def test_ledger_export_writes_into_a_fifo_and_leaves_it_a_fifo(
    workspace: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = run_cli("ledger", "export", "--output", str(fifo))
    reader.join(30)
    assert result.code == 0, result
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert len(json.loads(received[0])) > 0


def test_ledger_export_to_dev_null_leaves_it_a_device(workspace: Path) -> None:
    result = run_cli("ledger", "export", "--output", "/dev/null", "--force")
    assert result.code == 0, result
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_ledger_export_refuses_a_symlink_and_replaces_nothing(
    workspace: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    refused(run_cli("ledger", "export", "--output", str(link), "--force"), "symbolic link")
    assert link.is_symlink() and target.read_text() == "keep me\n"


def test_ledger_export_to_standard_output(workspace: Path) -> None:
    in_process = run_cli("ledger", "export", "--output", "-")
    assert in_process.code == 0, in_process
    events = json.loads(in_process.stdout)
    assert events and {"seq", "type"} <= set(events[0])
    real = run_cli_process("ledger", "export", "--output", "-", "--format", "csv")
    assert real.code == 0, real
    assert real.stdout.splitlines()[0].startswith("seq,")
    assert not Path("-").exists()
