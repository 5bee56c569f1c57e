"""Interrupted restores and backups: a restore that fails anywhere leaves no workspace, no
hidden staging folder and no PostgreSQL schema (and the name can be restored into right
after); a backup that fails leaves no partial archive."""

from __future__ import annotations

import errno
import gc
import os
import sqlite3
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import psycopg
import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.home import atomic as atomic_module
from caracal.services import staging as staging_module
from caracal.services.backup import restore as restore_module
from caracal.services.backup import tables as tables_module
from caracal.services.backup.archive_writer import ArchiveWriter
from tests.backup.conftest import (
    LOCK_ENV,
    Source,
    assert_clear_error,
    assert_nothing_left,
    cli,
    index_of,
    manifest_of,
    ok,
    read_members,
    replace_data,
    set_manifest,
    snapshot,
    table_dump,
    table_rows,
    write_members,
)

VICTIM = "victim"


def _pg_url(backend: str) -> str | None:
    return os.environ["CARACAL_STORE_URL"] if backend == "postgresql" else None


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def _disk_full(backend: str) -> Exception:
    """What the database driver raises when its disk fills up."""
    if backend == "postgresql":
        return psycopg.errors.DiskFull("could not extend file: No space left on device")
    return sqlite3.OperationalError("database or disk is full")


def assert_failed_cleanly(result: Any, home: Path, backend: str, *, one_line: bool = True) -> None:
    """Non-zero exit from the enum (or 130 after Ctrl-C), one line on stderr, and nothing left
    behind."""
    if result.code == 130:  # interrupted: the conventional exit status, no message needed
        assert result.stdout == "", result
    else:
        assert result.code != 0 and result.code in {int(c) for c in ExitCode}, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 if one_line else len(lines) >= 1, result
    assert_nothing_left(home, VICTIM, _pg_url(backend))


def assert_restores_now(archive: Path, home: Path) -> None:
    """The name is free again: a plain restore under it succeeds."""
    ok(cli("backup", "restore", str(archive), "--as", VICTIM))
    ok(cli("ledger", "verify", workspace=VICTIM))
    hidden = [p.name for p in (home / "workspaces").iterdir() if p.name.startswith(".")]
    assert hidden == []


# ---- failures inside the restore -------------------------------------------------------------
class _FailingStream:
    """A table dump that yields `good` lines and then fails the way a full disk does."""

    def __init__(self, inner: IO[bytes], good: int, error: Exception) -> None:
        self.inner, self.good, self.error = inner, good, error
        self.rows = -1  # the header line comes first

    def readline(self, size: int = -1) -> bytes:
        if self.rows == self.good:
            raise self.error
        self.rows += 1
        return self.inner.readline(size)


@pytest.mark.parametrize("failure", ["oserror-after-first-table", "db-full-inside-loading-loop"])
def test_disk_full_mid_restore_leaves_nothing(
    failure: str,
    backend: str,
    sqlite_source: Source,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = tables_module.load_table
    loaded: list[str] = []
    failed: list[str] = []

    def failing_load(conn: Any, table: Any, stream: Any, on_batch: Any = None) -> int:
        if failure == "oserror-after-first-table" and loaded:
            failed.append(table.name)
            raise _enospc()
        if failure == "db-full-inside-loading-loop" and table.name == "ledger_events":
            # Three batches of two rows are inserted, then the database is full.
            failed.append(table.name)
            stream = _FailingStream(stream, good=7, error=_disk_full(backend))
        count = real(conn, table, stream, on_batch)
        loaded.append(table.name)
        return count

    archive = sqlite_source.locked.path
    with monkeypatch.context() as mp:
        mp.setattr(tables_module, "BATCH", 2)
        mp.setattr(tables_module, "load_table", failing_load)
        result = cli("backup", "restore", str(archive), "--as", VICTIM, "--lock-key-env", LOCK_ENV)
    assert loaded and failed and failed[0] not in loaded, (loaded, failed)
    assert_failed_cleanly(result, home, backend)
    assert_restores_now(sqlite_source.plain.path, home)


@pytest.mark.parametrize("stage", ["recording-the-restore", "revealing-the-workspace"])
def test_failure_after_the_tables_are_loaded_leaves_nothing(
    stage: str,
    backend: str,
    sqlite_source: Source,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as mp:
        if stage == "recording-the-restore":

            def interrupted(*args: Any) -> None:
                raise KeyboardInterrupt  # Ctrl-C at the very end

            mp.setattr(restore_module, "_record_restore", interrupted)
        else:
            mp.setattr(staging_module, "os", _RenameFails(home / "workspaces" / VICTIM))
        result = cli("backup", "restore", str(sqlite_source.plain.path), "--as", VICTIM)
    assert_failed_cleanly(result, home, backend)
    assert_restores_now(sqlite_source.plain.path, home)


class _RenameFails:
    """`os` for the staging module, failing only the rename that reveals the workspace."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def rename(self, src: Any, dst: Any) -> None:
        if Path(dst) == self.target:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        os.rename(src, dst)


def test_restore_killed_before_it_could_clean_up_is_swept_by_the_next_one(
    backend: str, sqlite_source: Source, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed mid-restore cannot clean up after itself: the next restore (or
    create) sweeps the hidden folder and its PostgreSQL schema."""

    def killed(*args: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(restore_module, "_record_restore", killed)
        mp.setattr(staging_module, "shutil", SimpleNamespace(rmtree=lambda *a, **k: None))
        mp.setattr(staging_module, "drop_store", lambda location: None)
        result = cli("backup", "restore", str(sqlite_source.plain.path), "--as", VICTIM)
    assert result.code == 130, result
    leftovers = [p.name for p in (home / "workspaces").iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".creating-{VICTIM}-")
    assert not (home / "workspaces" / VICTIM).exists()
    assert_restores_now(sqlite_source.plain.path, home)
    assert snapshot(VICTIM).events()[-1]["type"] == "backup.restored"


# ---- what the user is told -------------------------------------------------------------------
def test_full_disk_while_restoring_is_not_blamed_on_the_archive(
    sqlite_source: Source, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tables_module.load_table

    def failing_load(conn: Any, table: Any, stream: Any, on_batch: Any = None) -> int:
        if table.name == "mandates":
            raise _enospc()
        return real(conn, table, stream, on_batch)

    monkeypatch.setattr(tables_module, "load_table", failing_load)
    result = cli("backup", "restore", str(sqlite_source.plain.path), "--as", VICTIM)
    assert_nothing_left(home, VICTIM)
    line = assert_clear_error(result, ExitCode(result.code), "no space left on device")
    assert "damaged" not in line and result.code != ExitCode.INTEGRITY


def _duplicate_row_archive(source: Source, tmp_path: Path) -> Path:
    """Hashes and counts all consistent, but one principal appears twice: the database
    refuses it (UNIQUE), which only a restore can find out."""
    members = read_members(source.plain.path)
    name = "tables/principals.jsonl"
    header, rows = table_rows(members[index_of(members, name)])
    replace_data(members, name, table_dump(header, [*rows, rows[0]]), declare=True)
    manifest = manifest_of(members)
    manifest["tables"]["principals"]["rows"] += 1
    set_manifest(members, manifest)
    return write_members(tmp_path / "duplicate-row.tar.gz", members)


def test_data_the_database_refuses_is_a_clear_error(
    backend: str, sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    archive = _duplicate_row_archive(sqlite_source, tmp_path)
    ok(cli("backup", "verify", str(archive)))  # nothing in the archive itself is inconsistent
    result = cli("backup", "restore", str(archive), "--as", VICTIM)
    assert_nothing_left(home, VICTIM, _pg_url(backend))
    assert_clear_error(result, ExitCode.INTEGRITY, "does not load cleanly")


def test_data_the_database_refuses_leaves_nothing(
    backend: str, sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    archive = _duplicate_row_archive(sqlite_source, tmp_path)
    result = cli("backup", "restore", str(archive), "--as", VICTIM)
    # (What it says is test_data_the_database_refuses_is_a_clear_error's business.)
    assert_failed_cleanly(result, home, backend, one_line=False)


# ---- failures while writing an archive ------------------------------------------------------
class _FailingOS:
    """`os` for the step that puts a finished file in place, with that step failing (a link
    to the new name, or a rename over it)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def replace(src: Any, dst: Any) -> None:
        raise _enospc()

    @staticmethod
    def link(src: Any, dst: Any) -> None:
        raise _enospc()


# The unlocked mid-archive failure also trips an unraisable exception (see
# test_failed_backup_leaves_no_stray_exception); here only the files matter.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("where", ["mid-archive", "final-rename"])
@pytest.mark.parametrize("locked", [False, True], ids=["unlocked", "locked"])
@pytest.mark.parametrize("output", [False, True], ids=["default-folder", "output"])
def test_failed_backup_leaves_no_partial_archive(
    where: str,
    locked: bool,
    output: bool,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok(cli("workspace", "create", "demo"))
    ok(cli("principal", "register", "--kind", "human", "--name", "alice"))
    workspace = home / "workspaces" / "demo"
    events = snapshot("demo").events()
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    args = ["backup", "create", *(("--lock-key-env", LOCK_ENV) if locked else ())]
    if output:
        args += ["--output", str(folder / "demo.tar.gz")]
    with monkeypatch.context() as mp:
        if where == "mid-archive":
            _fail_mid_archive(mp)
        else:
            mp.setattr(atomic_module, "os", _FailingOS())
        result = cli(*args)
    assert result.code != 0 and len(result.stderr.strip().splitlines()) == 1, result
    assert sorted(p.name for p in (workspace / "backups").iterdir()) == []
    assert sorted(p.name for p in folder.iterdir()) == []
    assert sorted(p.name for p in (workspace / "cache").iterdir()) == []  # no work files
    after = snapshot("demo").events()
    # Keeping the head before writing is recorded (it happened); the backup is not.
    assert after[: len(events)] == events
    assert [e["type"] for e in after[len(events) :]] == ["ledger.head_kept"]
    assert ok(cli("backup", "list", "--json")).json() == []


def _fail_mid_archive(mp: pytest.MonkeyPatch) -> None:
    real = ArchiveWriter.add_file
    added: list[str] = []

    def add_file(self: Any, name: str, path: Path) -> None:
        if len(added) == 3:
            raise _enospc()
        added.append(name)
        real(self, name, path)

    mp.setattr(ArchiveWriter, "add_file", add_file)


def test_failed_backup_leaves_no_stray_exception(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("workspace", "create", "demo"))
    stray: list[Any] = []
    with monkeypatch.context() as mp:
        _fail_mid_archive(mp)
        mp.setattr(sys, "unraisablehook", stray.append)
        result = cli("backup", "create")
        gc.collect()
    assert result.code != 0
    assert [f"{u.exc_type.__name__}: {u.exc_value}" for u in stray] == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_full_disk_while_writing_an_archive_is_a_clear_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("workspace", "create", "demo"))
    with monkeypatch.context() as mp:
        _fail_mid_archive(mp)
        result = cli("backup", "create")
    assert result.code not in (ExitCode.OK, ExitCode.INTERNAL), result
    assert_clear_error(result, ExitCode(result.code), "no space left on device")
