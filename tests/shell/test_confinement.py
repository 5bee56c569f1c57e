"""What the restricted shell lets its commands touch: files only inside the host I/O folder
(after `..` and links are resolved), nothing overwritten without --force (anywhere, the CLI
included), and no store location chosen from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.support.cli import Result, run_cli


def shell(line: str) -> Result:
    return run_cli("shell", "-c", line)


@pytest.fixture
def demo(home: Path) -> Path:
    """A workspace with a provider, and the host I/O folder (created by the shell)."""
    assert run_cli("workspace", "create", "demo").code == 0
    assert run_cli("workspace", "create", "other").code == 0
    added = run_cli(
        "provider", "add", "github", "--base-url", "https://api.github.com",
        "--resource", "repos", "--action", "repos:read",
    )  # fmt: skip
    assert added.code == 0, added
    assert shell("principal list").code == 0
    folder = home / "host-io"
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
    return folder


def test_file_arguments_outside_the_host_io_folder_are_refused(demo: Path, home: Path) -> None:
    victim = home / "workspaces" / "other" / "config.yaml"
    before = victim.read_bytes()
    (demo / "link.json").symlink_to(victim)
    (demo / "inside").mkdir()
    (demo / "inside" / "escape").symlink_to(home / "workspaces")
    lines = [
        "ledger export --output ../workspaces/other/config.yaml --force",
        f"ledger export --output {victim} --force",
        "ledger export --output link.json --force",
        "ledger export --output inside/escape/other/config.yaml --force",
        "provider export github ../../provider.json",
        f"backup create --output {home / 'backup.tar.gz'}",
        f"provider import {victim}",
        f"backup verify {home / 'workspaces' / 'demo' / 'store.db'}",
        f"ledger verify --since {victim}",
    ]
    for line in lines:
        result = shell(line)
        assert result.code == ExitCode.INVALID, (line, result)
        assert "outside the host I/O folder" in result.stderr, (line, result)
    assert victim.read_bytes() == before
    assert not (home / "provider.json").exists() and not (home / "backup.tar.gz").exists()


def test_inside_the_folder_relative_paths_work_and_nothing_is_replaced_without_force(
    demo: Path,
) -> None:
    assert shell("ledger export --output events.json").code == 0
    first = json.loads((demo / "events.json").read_text())
    again = shell("ledger export --output events.json")
    assert again.code == ExitCode.CONFLICT and "already exists" in again.stderr, again
    assert "--force" in again.stderr
    assert shell("ledger export --output events.json --force").code == 0
    assert len(json.loads((demo / "events.json").read_text())) >= len(first)
    assert shell("provider export github github.json").code == 0
    assert shell("provider import github.json --replace").code == 0
    assert shell("backup create --output b.tar.gz").code == 0
    assert shell("backup verify b.tar.gz").code == 0


@pytest.mark.parametrize(
    "line",
    [
        "workspace create third --store-url postgresql+psycopg://u:p@elsewhere.example/db",
        "backup restore b.tar.gz --as fourth --store-url postgresql+psycopg://elsewhere/db",
        "config set store.url sqlite:///elsewhere.db",
        "config set store.pg_schema caracal_other",
    ],
)
def test_store_locations_are_not_accepted_from_the_shell(demo: Path, home: Path, line: str) -> None:
    shell("backup create --output b.tar.gz")
    result = shell(line)
    assert result.code == ExitCode.REFUSED and "not accepted in the Caracal shell" in result.stderr
    assert not (home / "workspaces" / "third").exists()
    assert not (home / "workspaces" / "fourth").exists()
    config = (home / "workspaces" / "demo" / "config.yaml").read_text()
    assert "elsewhere" not in config and "caracal_other" not in config


def test_outside_the_shell_existing_files_are_not_replaced_either(
    demo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious.txt"
    for args in (
        ("ledger", "export", "--output", str(target)),
        ("provider", "export", "github", str(target)),
        ("backup", "create", "--output", str(target)),
    ):
        target.write_bytes(b"keep me")
        result = run_cli(*args)
        assert result.code == ExitCode.CONFLICT and "already exists" in result.stderr, (
            args,
            result,
        )
        assert target.read_bytes() == b"keep me"
        assert run_cli(*args, "--force").code == 0, args
        assert target.read_bytes() != b"keep me"
    # The CLI is not confined: a folder of the operator's choosing is fine there.
    assert run_cli("ledger", "export", "--output", str(tmp_path / "fresh.json")).code == 0
