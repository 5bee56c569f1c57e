"""The `caracal backup` commands as a user meets them, and the safety backup written by
`workspace delete`."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.services.backup.archive_writer import ArchiveWriter
from tests.backup.conftest import (
    LOCK_ENV,
    READ,
    REPOS,
    Source,
    assert_clear_error,
    cli,
    ok,
    pg_schemas,
    snapshot,
    validate,
)

REPORT_KEYS = {
    "ok",
    "workspace",
    "created_at",
    "locked",
    "secrets_included",
    "tables",
    "ledger_events",
    "signed_by",
    "trust",
    "problem",
}


def _small_world(name: str, *, use: bool = True) -> dict[str, str]:
    ok(cli("workspace", "create", name, *(("--use",) if use else ())))
    ok(cli("provider", "add", "github", "--base-url", "https://api.github.com",
           "--resource", "repos", "--action", "repos:read", workspace=name))  # fmt: skip
    for kind, principal in (("human", "alice"), ("worker", "w1")):
        ok(cli("principal", "register", "--kind", kind, "--name", principal, workspace=name))
    ok(cli("policy", "create", "--principal", "w1", "--max-validity", "1h",
           "--resource", "provider:github:resource:*", "--action", "provider:github:action:*",
           workspace=name))  # fmt: skip
    mandate = ok(cli("mandate", "issue", "--issuer", "alice", "--subject", "w1", "--ttl", "30m",
                     "--resource", REPOS, "--action", READ, "--json", workspace=name)).json()  # fmt: skip
    return {"mandate": mandate["id"]}


# ---- create / list ---------------------------------------------------------------------------
def test_backup_list_shows_archives_with_size_and_lock_state(home: Path) -> None:
    _small_world("demo")
    assert ok(cli("backup", "list", "--json")).json() == []
    assert "No backups yet" in ok(cli("backup", "list")).stdout
    plain = ok(cli("backup", "create", "--json")).json()
    locked = ok(cli("backup", "create", "--lock-key-env", LOCK_ENV, "--json")).json()
    backups = home / "workspaces" / "demo" / "backups"
    (backups / ".demo-x.tar.gz.1234.partial").write_bytes(b"half")  # an unfinished write
    (backups / "notes.txt").write_text("not an archive")

    listed = ok(cli("backup", "list", "--json")).json()
    assert [row["file"] for row in listed] == sorted(
        [Path(plain["path"]).name, Path(locked["path"]).name]
    )
    by_file = {row["file"]: row for row in listed}
    for created, is_locked in ((plain, False), (locked, True)):
        path = Path(created["path"])
        row = by_file[path.name]
        assert row["path"] == str(path) and row["locked"] is is_locked
        assert row["size"] == path.stat().st_size == created["size"] > 0
        assert datetime.fromisoformat(row["modified"]).tzinfo is not None
        assert path.name.startswith("demo-") and path.name.endswith(
            ".tar.gz.locked" if is_locked else ".tar.gz"
        )
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    text = ok(cli("backup", "list")).stdout
    assert Path(plain["path"]).name in text and Path(locked["path"]).name in text
    assert "partial" not in text and "notes.txt" not in text


def test_backup_create_json_and_output_option(home: Path, tmp_path: Path) -> None:
    _small_world("demo")
    target = tmp_path / "exports" / "demo.tar.gz"
    missing = cli("backup", "create", "--output", str(target))
    assert_clear_error(missing, ExitCode.NOT_FOUND, "does not exist")
    target.parent.mkdir()
    created = ok(cli("backup", "create", "--output", str(target), "--json")).json()
    assert set(created) == {
        "path",
        "size",
        "locked",
        "secrets_included",
        "tables",
        "ledger_head_seq",
        "signed_by",
        "seconds",
    }
    assert created["path"] == str(target) and created["size"] == target.stat().st_size
    assert created["locked"] is False and created["secrets_included"] is False
    assert created["tables"]["principals"] == 2 and created["tables"]["mandates"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo.tar.gz"]
    again = cli("backup", "create", "--output", str(target))
    assert_clear_error(again, ExitCode.CONFLICT, "already exists")
    assert target.stat().st_size == created["size"]  # not overwritten
    text = ok(cli("backup", "create"))
    assert text.stdout.strip().endswith(".tar.gz") and "not locked, secrets omitted" in text.stderr


def test_lock_without_a_terminal_and_without_a_workspace(home: Path) -> None:
    assert_clear_error(cli("backup", "create"), ExitCode.NOT_FOUND, "no active workspace")
    ok(cli("workspace", "create", "demo"))
    assert_clear_error(cli("backup", "create", "--lock"), ExitCode.REFUSED, "--lock-key-env")
    assert_clear_error(
        cli("backup", "create", "--lock-key-env", "CARACAL_TEST_UNSET_VAR"),
        ExitCode.INVALID,
        "CARACAL_TEST_UNSET_VAR is not set",
    )
    assert list((home / "workspaces" / "demo" / "backups").iterdir()) == []


# ---- verify ----------------------------------------------------------------------------------
def test_verify_json_shape_for_sound_archives(sqlite_source: Source, home: Path) -> None:
    for archive, extra in (
        (sqlite_source.plain, ()),
        (sqlite_source.locked, ("--lock-key-env", LOCK_ENV)),
    ):
        report = ok(cli("backup", "verify", str(archive.path), *extra, "--json")).json()
        assert set(report) == REPORT_KEYS
        assert report["ok"] is True and report["problem"] is None
        assert report["workspace"] == "src"
        assert report["locked"] is archive.locked and report["secrets_included"] is archive.locked
        assert report["tables"] == archive.created["tables"]
        assert report["ledger_events"] == archive.head_seq == archive.created["ledger_head_seq"]
        assert datetime.fromisoformat(report["created_at"]).tzinfo is not None
        text = ok(cli("backup", "verify", str(archive.path), *extra))
        assert text.stdout.startswith("Archive intact: workspace src")
        assert f"{archive.head_seq} ledger events" in text.stdout
    assert not (home / "workspaces").exists() or list((home / "workspaces").iterdir()) == []


def test_verify_exits_7_naming_the_problem(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    data = sqlite_source.plain.path.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(data[: len(data) // 2])
    result = cli("backup", "verify", str(broken), "--json")
    assert result.code == ExitCode.INTEGRITY, result
    report = result.json()
    assert set(report) == REPORT_KEYS
    assert report["ok"] is False and isinstance(report["problem"], str) and report["problem"]
    text = cli("backup", "verify", str(broken))
    assert text.code == ExitCode.INTEGRITY
    # The verdict is an error: on stderr, so a script reading stdout never takes it for data.
    assert text.stdout == "" and text.stderr.strip() == f"Archive BROKEN: {report['problem']}"


# ---- events in the ledgers -------------------------------------------------------------------
def test_backup_and_restore_are_recorded_in_the_ledgers(home: Path) -> None:
    _small_world("demo")
    before = snapshot("demo").events()
    created = ok(cli("backup", "create", "--lock-key-env", LOCK_ENV, "--json")).json()
    events = ok(cli("ledger", "list", "--type", "backup.created", "--json")).json()
    assert len(events) == 1
    payload = events[0]["payload"]
    assert payload == {
        "file": Path(created["path"]).name,
        "size": created["size"],
        "locked": True,
        "secrets_included": True,
        "ledger_head_seq": created["ledger_head_seq"],
        "signed_by": created["signed_by"],
    }
    # Before writing, the backup kept the head it is taken at in the history (one event).
    assert [e["type"] for e in snapshot("demo").events()[len(before) :]] == [
        "ledger.head_kept",
        "backup.created",
    ]
    assert events[0]["seq"] == created["ledger_head_seq"] + 1 == before[-1]["seq"] + 2

    ok(cli("backup", "restore", created["path"], "--as", "copy", "--lock-key-env", LOCK_ENV))
    restored = ok(cli("ledger", "list", "--type", "backup.", "--json", workspace="copy")).json()
    assert [e["type"] for e in restored] == ["backup.restored"]
    assert restored[0]["payload"]["file"] == Path(created["path"]).name
    assert restored[0]["payload"]["from_workspace"] == "demo"
    assert restored[0]["payload"]["secrets_included"] is True
    assert restored[0]["payload"]["signed_by"] == created["signed_by"]
    assert restored[0]["payload"]["trust"] == "pinned by workspace demo"
    assert restored[0]["seq"] == created["ledger_head_seq"] + 1
    # The source's ledger is not touched by the restore.
    assert len(snapshot("demo").events()) == len(before) + 2
    ok(cli("ledger", "verify", workspace="copy"))
    ok(cli("ledger", "verify", workspace="demo"))


# ---- workspace delete ------------------------------------------------------------------------
def test_workspace_delete_writes_a_backup_that_restores(backend: str, home: Path) -> None:
    ok(cli("workspace", "create", "keep", "--use"))
    ids = _small_world("doomed", use=False)
    before = snapshot("doomed")
    refused = cli("workspace", "delete", "doomed")
    assert refused.code == ExitCode.REFUSED and (home / "workspaces" / "doomed").exists()

    deleted = ok(cli("workspace", "delete", "doomed", "--yes"))
    archives = sorted((home / "backups").iterdir())
    assert len(archives) == 1 and archives[0].name.startswith("doomed-")
    assert archives[0].name.endswith(".tar.gz") and str(archives[0]) in deleted.stderr
    assert not (home / "workspaces" / "doomed").exists()
    url = os.environ.get("CARACAL_STORE_URL")
    if backend == "postgresql":
        assert url is not None and "caracal_doomed" not in pg_schemas(url)

    ok(cli("backup", "verify", str(archives[0])))
    restored = ok(cli("backup", "restore", str(archives[0]), "--as", "doomed", "--json")).json()
    assert restored["store"] == (
        "PostgreSQL (caracal_doomed)" if backend == "postgresql" else "SQLite"
    )
    after = snapshot("doomed")
    for table in ("principals", "principal_keys", "policies", "mandates", "providers"):
        assert after.tables[table] == before.tables[table], table
    seqs = [e["seq"] for e in before.events()]
    assert [e for e in after.events() if e["seq"] in seqs] == before.events()
    ok(cli("ledger", "verify", workspace="doomed"))
    # Unlocked: decisions still hold, but issuing needs a new key first.
    assert validate(ids["mandate"], READ, REPOS, None, workspace="doomed") == (True, "ALLOWED")


def test_workspace_delete_no_backup_writes_none(home: Path) -> None:
    ok(cli("workspace", "create", "keep", "--use"))
    ok(cli("workspace", "create", "doomed"))
    ok(cli("workspace", "delete", "doomed", "--yes", "--no-backup"))
    assert not (home / "workspaces" / "doomed").exists()
    assert not (home / "backups").exists() or list((home / "backups").iterdir()) == []


def test_workspace_delete_with_a_lock_key_writes_a_locked_backup_with_the_secrets(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caracal.services.backup.archive_check import verify_archive

    ok(cli("workspace", "create", "keep", "--use"))
    ok(cli("workspace", "create", "doomed"))
    unlocked = cli("workspace", "delete", "doomed", "--yes", "--no-backup")
    assert "signing key" not in unlocked.stderr  # nothing is written, so nothing is lost
    ok(cli("workspace", "create", "doomed"))
    monkeypatch.setenv("DELETE_LOCK_KEY", "a lock key for doomed")
    ok(cli("workspace", "delete", "doomed", "--yes", "--lock-key-env", "DELETE_LOCK_KEY"))
    [archive] = (home / "backups").iterdir()
    assert archive.name.endswith(".tar.gz.locked")
    report = verify_archive(archive, "a lock key for doomed")
    assert report.ok and report.secrets_included
    ok(cli("workspace", "create", "doomed"))
    said = ok(cli("workspace", "delete", "doomed", "--yes")).stderr
    assert "signing key" in said and "--lock-key-env" in said  # what an unlocked one drops


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_workspace_delete_whose_backup_fails_deletes_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("workspace", "create", "keep", "--use"))
    _small_world("doomed", use=False)
    before = snapshot("doomed")

    def add_file(self: Any, name: str, path: Path) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as mp:
        mp.setattr(ArchiveWriter, "add_file", add_file)
        result = cli("workspace", "delete", "doomed", "--yes")
    assert result.code != 0, result
    assert (home / "workspaces" / "doomed").exists()
    after = snapshot("doomed").tables
    # The backup kept the head it was to be taken at before it failed (an event of its own):
    # harmless, and nothing else changed.
    ledger = {"ledger_checkpoints", "ledger_events", "ledger_head", "ledger_nodes"}
    assert {k: v for k, v in after.items() if k not in ledger} == {
        k: v for k, v in before.tables.items() if k not in ledger
    }
    assert [e["type"] for e in after["ledger_events"][len(before.events()) :]] == [
        "ledger.head_kept"
    ]
    assert not (home / "backups").exists() or [p.name for p in (home / "backups").iterdir()] == []
    assert json.dumps(ok(cli("workspace", "list", "--json")).json()).count('"doomed"') == 1
