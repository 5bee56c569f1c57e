"""A stop requested through `Progress` at each phase of a backup, a restore or an export
raises `Cancelled` and leaves nothing: no archive or temporary file, no workspace or staging
folder, no export file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from caracal.core.progress import Cancelled, Progress, Step
from caracal.services.backup.restore import restore
from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceManager
from tests.backup.conftest import cli, ok


def stopping_at(prefix: str) -> tuple[Progress, list[str]]:
    """A Progress that asks to stop at the first step of the phase starting with `prefix`."""
    stop, phases = threading.Event(), []

    def report(step: Step) -> None:
        if not phases or phases[-1] != step.phase:
            phases.append(step.phase)
        if step.phase.startswith(prefix):
            stop.set()

    return Progress(report, stop), phases


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("phase", ["Dumping mandates", "Dumping ledger_events", "Writing"])
def test_stopped_backup_leaves_no_file(home: Path, phase: str) -> None:
    ok(cli("workspace", "create", "demo"))
    paths = WorkspaceManager().paths("demo")
    cached = listing(paths.cache)
    progress, phases = stopping_at(phase)
    with Caracal.open("demo") as app, pytest.raises(Cancelled):
        app.backups.create(progress=progress)
    assert any(p.startswith(phase) for p in phases), phases
    assert listing(paths.backups) == [] and listing(paths.cache) == cached


@pytest.mark.parametrize("phase", ["Loading ledger_events", "Rebuilding", "Verifying"])
def test_stopped_restore_leaves_no_workspace(home: Path, phase: str) -> None:
    ok(cli("workspace", "create", "demo"))
    with Caracal.open("demo") as app:
        archive = app.backups.create().path
    before = listing(home / "workspaces")
    progress, phases = stopping_at(phase)
    with pytest.raises(Cancelled):
        restore(WorkspaceManager(), archive, "copy", progress=progress)
    assert any(p.startswith(phase) for p in phases), phases
    assert listing(home / "workspaces") == before
    ok(cli("backup", "restore", str(archive), "--as", "copy"))  # the name is free


def test_stopped_export_leaves_no_file(home: Path, tmp_path: Path) -> None:
    ok(cli("workspace", "create", "demo"))
    with Caracal.open("demo") as app:
        for n in range(3):
            app.principals.register("human", f"p{n}", None)
    out = tmp_path / "out" / "ledger.json"
    out.parent.mkdir()
    stop = threading.Event()
    stop.set()  # stopped before the first report
    with Caracal.open("demo") as app, pytest.raises(Cancelled):
        app.ledger.export(out, "json", progress=Progress(cancel=stop))
    assert listing(out.parent) == []
