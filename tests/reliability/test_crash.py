"""Proving ground, crash safety: real processes killed with a real SIGKILL at random moments.

1. Mandate traffic (`test_kill_9_during_mandate_traffic`, SQLite and PostgreSQL). A child
   (`crash_worker traffic`) issues, delegates, validates and revokes mandates through the
   facade (with the odd key rotation, `config set` and Flow-state save) on one workspace. It
   writes a `begin` line before each operation and, once the facade call has returned, an
   fsynced `ack` line saying what must now hold. The test SIGKILLs it after a random delay
   (a fifth of the kills while it opens the workspace or runs its first, cold operation, the
   rest up to 0.3 s later, when it runs one every few milliseconds), starts another on the
   same workspace, and after every kill checks that:
   - `ledger verify` passes (and SQLite's `PRAGMA quick_check`);
   - mandate rows and `mandate.*` ledger events agree one for one, and no mandate outlives
     its revoked parent: every change landed whole or not at all;
   - every acknowledged mandate exists and validates as acknowledged: ALLOWED, or
     MANDATE_REVOKED once a revocation of it or an ancestor was acknowledged (new mandates
     and a random sample of older ones after every kill, all of them after the last);
   - every acknowledged validation is in the ledger, every acknowledged key rotation's key
     exists, and every validation answered what the worker expected;
   - config.yaml and flow_state.json parse and hold the acknowledged value (or the one being
     written when the kill came), master.key, master.check, master.account and the ledger
     key pins are intact, and the secrets still open: alice signs a mandate that validates.
   The operation a kill interrupted is then settled (did it commit?) for the figures.
2. Backups (`test_backup_create_killed_at_random_points`,
   `test_backup_restore_killed_at_random_points`, both backends). `caracal backup create`
   (into backups/ or `--output`, locked or not) and `caracal backup restore ARCHIVE --as
   NAME`, each run by a child (`crash_worker cli`), are SIGKILLed at a random point of their
   run, often near its end (the run's length is learnt from an uninterrupted one). After a
   killed create there is no archive under the final name, or it passes `caracal backup
   verify` (and `backup list` shows only such archives), and the source's ledger verifies;
   after a killed restore the workspace does not exist (and the name can be restored again,
   the next restore sweeping the leftovers, PostgreSQL schemas included), or it opens, passes
   `ledger verify` and holds every row of the archive.
   `test_backup_create_with_the_disk_filling_up` fails the archive's writes with ENOSPC at a
   random byte instead: a clear error, and no file, work folder or ledger event left.

Most children are forked by `crash_worker spawner`, which imports Caracal once; every
twentieth is a fresh `python -m tests.reliability.crash_worker` interpreter. Each test prints
its figures (`pytest -s`, or in the captured output of a failure), e.g.
`CRASH SQLite: 200 kills survived, 123 during an operation, 4,970 acknowledged operations checked`.

Sizes, chosen by CARACAL_PROVING:
- short (default, CI): 200 kills on SQLite and 50 on PostgreSQL (the issue's numbers); 10
  interrupted creates and 10 interrupted restores per backend; 10 filling disks. About four
  minutes on two cores.
- long: 1,000 kills on SQLite and 250 on PostgreSQL; 40 interrupted creates and 40
  interrupted restores per backend; 40 filling disks.
CARACAL_PROVING_SEED=N repeats a run's random choices, not its timing (each test prints its seed).
"""

from __future__ import annotations

import errno
import os
import random
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

import psycopg
import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.services.backup import service as service_module
from caracal.services.backup.archive_writer import ArchiveWriter
from caracal.services.facade import Caracal
from tests.reliability.crash_support import (
    Judge,
    Launcher,
    Promises,
    tail,
    traffic_kill_delay,
    wait_for_backends_to_go,
    wait_for_growth,
)
from tests.reliability.crash_worker import ACTIONS, PRINCIPALS, RESOURCES, read_lines
from tests.support.cli import Result, run_cli

LONG = os.environ.get("CARACAL_PROVING", "short").strip().lower() == "long"
KILLS = {"sqlite": 1000, "postgresql": 250} if LONG else {"sqlite": 200, "postgresql": 50}
BACKUP_KILLS = 40 if LONG else 10
FULL_DISKS = 40 if LONG else 10
FRESH_EVERY = 20  # every twentieth child is a fresh interpreter rather than a fork
WORKSPACE = "proving"
LOCK_ENV = "CARACAL_PROVING_LOCK_KEY"
LOCK_KEY = "proving ground lock key"
LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

# Marked slow, yet run by default (nothing deselects the marker): CI runs the short mode.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * 3600 if LONG else 300)]


def _seed() -> int:
    configured = os.environ.get("CARACAL_PROVING_SEED")
    return int(configured) if configured else random.SystemRandom().randrange(2**32)


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


def build_workspace(name: str, checkpoint_every: int = 10) -> Path:
    """A workspace with the worker's provider, principals and policies."""
    ok(run_cli("workspace", "create", name))
    ws = ("--workspace", name)
    ok(run_cli(*ws, "config", "set", "ledger.checkpoint_every", str(checkpoint_every)))
    ok(run_cli(*ws, "provider", "add", "github", "--base-url", "https://api.github.com",
               "--resource", "repos", "--resource", "issues", "--action", "repos:read",
               "--action", "repos:write", "--action", "issues:comment"))  # fmt: skip
    with Caracal.open(name) as app:
        for principal, kind in PRINCIPALS.items():
            app.principals.register(kind, principal)
            if kind != "human":
                app.policies.create(
                    principal,
                    "24h",
                    ["provider:github:resource:*"],
                    ["provider:github:action:*"],
                    delegation_depth=3,
                )
    return Path(os.environ["CARACAL_HOME"]) / "workspaces" / name


# ---- 1. mandate traffic under kill -9 --------------------------------------------------------------
def test_kill_9_during_mandate_traffic(backend: str, home: Path, tmp_path: Path) -> None:
    seed = _seed()
    rng = random.Random(seed)
    root = build_workspace(WORKSPACE)
    promises = Promises(tmp_path / "acks.jsonl", config_ok={10_000})  # a new config's value
    judge = Judge(WORKSPACE, root, promises, rng)
    launcher = Launcher(tmp_path / "logs")
    started = time.monotonic()
    ops = ("issue", "delegate", "validate", "revoke")

    def cycle(fresh: bool, delay: float) -> None:
        child = judge.start(launcher, fresh=fresh)
        time.sleep(delay)
        status = launcher.kill(child)
        assert status == -9, f"the child ended by itself ({status}):\n{tail(child.log)}"
        if backend == "postgresql":
            wait_for_backends_to_go(os.environ["CARACAL_STORE_URL"])
        judge.after_kill()

    try:
        for n in range(KILLS[backend]):
            cycle(n % FRESH_EVERY == 0, traffic_kill_delay(rng, promises.warmup()))
        # On a loaded machine a rare operation may not have been acknowledged before every
        # kill: a few longer runs (still ended by kill -9) until each one has been.
        for _ in range(KILLS[backend]):
            if all(promises.acked[op] for op in ops):
                break
            cycle(False, promises.warmup() + 1.0)
        judge.final()
        ok(run_cli("--workspace", WORKSPACE, "ledger", "verify"))
    finally:
        launcher.close()
    assert all(promises.acked[op] for op in ops), promises.acked
    print(
        f"\n{judge.figures(LABEL[backend])}\n  seed {seed}, {time.monotonic() - started:.0f}s",
        flush=True,
    )


# ---- 2. backups under kill -9 ----------------------------------------------------------------------
def populate(name: str, count: int) -> None:
    """Enough history that a backup takes a while: mandates, delegations, revocations,
    validations (and signed checkpoints every 50 events)."""
    read, repos = ACTIONS[0], RESOURCES[0]
    with Caracal.open(name) as app:
        for n in range(count):
            root = app.mandates.issue("alice", "orch1", [repos], [read], "12h", delegation_depth=1)
            app.validation.validate(read, repos, mandate_id=root.id)
            if n % 3 == 0:
                child = app.mandates.delegate(root.id, "w1", [repos], [read], "6h")
                app.validation.validate(read, repos, mandate_id=child.id)
            if n % 5 == 0:
                app.mandates.revoke(root.id, reason="proving")


class Interrupter:
    """Runs one `caracal` command per child and SIGKILLs it at a random point of its run.
    How long a run takes is learnt from an uninterrupted one first, and revised upwards when
    a kill past that time still finds the command running."""

    def __init__(self, launcher: Launcher, rng: random.Random, folder: Path) -> None:
        self.launcher, self.rng, self.folder = launcher, rng, folder
        self.duration: dict[str, float] = {}
        self.runs = 0

    def _acks(self) -> Path:
        self.runs += 1
        return self.folder / f"cli-{self.runs:03d}.jsonl"

    def calibrate(self, kind: str, args: list[str]) -> None:
        acks = self._acks()
        child = self.launcher.start(["cli", "--acks", str(acks), "--", *args])
        assert self.launcher.reap(child) == 0, tail(child.log)
        begin, end = read_lines(acks)
        self.duration[kind] = float(end["t"] - begin["t"])

    def interrupt(self, kind: str, args: list[str]) -> bool:
        """Whether the command finished before the kill (now and then it does)."""
        acks = self._acks()
        child = self.launcher.start(["cli", "--acks", str(acks), "--", *args])
        wait_for_growth(acks, 0)
        # Anywhere in the run, and often near its end: the rename, fsyncs, the ledger event.
        near_end = self.rng.random() < 0.3
        delay = self.duration[kind] * self.rng.uniform(*((0.75, 1.3) if near_end else (0, 1)))
        time.sleep(delay)
        status = self.launcher.kill(child)
        lines = read_lines(acks)
        finished = bool(lines[-1]["e"] == "ack")
        # (A kill can also land between its `ack` line and its exit.)
        assert status in ((0, -9) if finished else (-9,)), f"status {status}\n{tail(child.log)}"
        if finished:
            assert lines[-1]["code"] == 0, tail(child.log)
        elif delay > self.duration[kind]:
            self.duration[kind] = delay * 1.1
        return finished


def _lock_args(locked: bool) -> list[str]:
    return ["--lock-key-env", LOCK_ENV] if locked else []


def _verifies(archive: Path) -> bool:
    result = run_cli("backup", "verify", str(archive), *_lock_args(archive.suffix == ".locked"))
    assert result.code in (0, ExitCode.INTEGRITY), result
    return result.code == 0


def _suffix(locked: bool) -> str:
    return ".tar.gz.locked" if locked else ".tar.gz"


def test_backup_create_killed_at_random_points(
    backend: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    monkeypatch.setenv(LOCK_ENV, LOCK_KEY)
    root = build_workspace(WORKSPACE, checkpoint_every=50)
    populate(WORKSPACE, 100)
    out = tmp_path / "archives"
    out.mkdir()
    launcher = Launcher(tmp_path / "logs")
    runs = Interrupter(launcher, rng, tmp_path)
    verified: set[Path] = set()
    finished = killed = 0
    try:
        for locked in (False, True):
            calibration = out / f"calibrate{_suffix(locked)}"
            args = ["backup", "create", "-o", str(calibration), *_lock_args(locked)]
            runs.calibrate(f"locked={locked}", args)
            calibration.unlink()
        for n in range(BACKUP_KILLS):
            locked, explicit = n % 2 == 1, n % 4 < 2
            target = out / f"b{n}{_suffix(locked)}"
            args = ["--workspace", WORKSPACE, "backup", "create", "--json", *_lock_args(locked)]
            args += ["--output", str(target)] if explicit else []
            done = runs.interrupt(f"locked={locked}", args)
            finished += done
            killed += not done
            if explicit:
                assert target.exists() or not done, "a finished backup is missing"
                assert not target.exists() or _verifies(target), f"{target} does not verify"
            for archive in _visible(root / "backups") - verified:
                assert _verifies(archive), f"{archive} is listed but does not verify"
                verified.add(archive)
            listed = ok(run_cli("--workspace", WORKSPACE, "backup", "list", "--json")).json()
            assert {row["path"] for row in listed} == {str(p) for p in verified}
            with Caracal.open(WORKSPACE) as app:
                report = app.ledger.verify()
                assert report.ok, report.problem
    finally:
        launcher.close()
    complete = _visible(out)  # each verified as soon as it appeared
    archived = len(verified) + len(complete)
    partials = [
        p for p in (*out.iterdir(), *(root / "backups").iterdir()) if p.suffix == ".partial"
    ]
    work = [p for p in (root / "cache").iterdir() if p.name.startswith("backup-")]
    print(
        f"\nBACKUP CREATE {LABEL[backend]}: {BACKUP_KILLS} kills, {killed} during the create, "
        f"{finished} after it finished; {archived} archives under their final name "
        f"({archived - finished} from killed runs), all verified, no partial one; left behind: "
        f"{len(partials)} hidden "
        f".partial files, {len(work)} work folders in cache/ (seed {seed}; runs of "
        f"{runs.duration['locked=False']:.2f}s, locked {runs.duration['locked=True']:.2f}s)",
        flush=True,
    )


def _visible(folder: Path) -> set[Path]:
    return {p for p in folder.iterdir() if not p.name.startswith(".")}


def _row_counts(name: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from caracal.services.backup import tables

    with Caracal.open(name) as app, app.store.read() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
            for t in tables.dumped_tables()
        }


def _mandate_states(name: str) -> dict[str, bool]:
    with Caracal.open(name) as app:
        rows = app.mandates.listing()
    return {row["id"]: row["revoked_at"] is not None for row in rows}


def _restored_whole(
    name: str, expected: dict[str, int], mandates: dict[str, bool], locked: bool
) -> None:
    """Opens, verifies, and holds every row of the archive (plus the backup.restored event,
    and without secrets the new ledger key that signed it)."""
    with Caracal.open(name) as app:
        report = app.ledger.verify()
        assert report.ok, f"restored workspace {name}: {report.problem}"
    assert _row_counts(name) == {
        **expected,
        "ledger_events": expected["ledger_events"] + 1,
        "ledger_keys": expected["ledger_keys"] + (0 if locked else 1),
    }
    assert _mandate_states(name) == mandates


def test_backup_restore_killed_at_random_points(
    backend: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    monkeypatch.setenv(LOCK_ENV, LOCK_KEY)
    build_workspace(WORKSPACE, checkpoint_every=50)
    populate(WORKSPACE, 100)
    archives = {locked: tmp_path / f"source{_suffix(locked)}" for locked in (False, True)}
    expected = {}
    for locked, path in archives.items():
        ok(run_cli("--workspace", WORKSPACE, "backup", "create", "-o", str(path),
                   *_lock_args(locked)))  # fmt: skip
        verified = ok(run_cli("backup", "verify", str(path), "--json", *_lock_args(locked)))
        expected[locked] = verified.json()["tables"]
    mandates = _mandate_states(WORKSPACE)
    launcher = Launcher(tmp_path / "logs")
    runs = Interrupter(launcher, rng, tmp_path)
    finished = killed = staged = 0
    unfinished: list[str] = []
    workspaces = home / "workspaces"
    try:
        for locked, path in archives.items():
            name = f"calibrate-{int(locked)}"
            args = ["backup", "restore", str(path), "--as", name, *_lock_args(locked)]
            runs.calibrate(f"locked={locked}", args)
            _restored_whole(name, expected[locked], mandates, locked)
        for n in range(BACKUP_KILLS):
            locked = n % 2 == 1
            name = f"victim-{n}"
            args = ["backup", "restore", str(archives[locked]), "--as", name, *_lock_args(locked)]
            done = runs.interrupt(f"locked={locked}", args)
            finished += done
            killed += not done
            listed = {w["name"] for w in ok(run_cli("workspace", "list", "--json")).json()}
            if (workspaces / name).exists():
                assert name in listed
                _restored_whole(name, expected[locked], mandates, locked)
            else:
                assert not done, "a finished restore is missing"
                assert name not in listed
                unfinished.append(name)
            staged += any(p.name.startswith(f".creating-{name}-") for p in workspaces.iterdir())
    finally:
        launcher.close()
    # A name whose restore was killed is free again, and the next restore sweeps what the
    # killed ones left (hidden folders, PostgreSQL schemas).
    again = unfinished[-1] if unfinished else "again"
    ok(run_cli("backup", "restore", str(archives[False]), "--as", again))
    _restored_whole(again, expected[False], mandates, False)
    assert [p.name for p in workspaces.iterdir() if p.name.startswith(".")] == []
    if backend == "postgresql":
        names = {w["name"] for w in ok(run_cli("workspace", "list", "--json")).json()}
        wanted = {f"caracal_{n.replace('-', '_')}" for n in names}
        assert {s for s in _pg_schemas() if s.startswith("caracal_")} == wanted
    print(
        f"\nBACKUP RESTORE {LABEL[backend]}: {BACKUP_KILLS} kills, {killed} during the restore, "
        f"{finished} after it finished; {BACKUP_KILLS - len(unfinished)} restored workspaces "
        f"({BACKUP_KILLS - len(unfinished) - finished} from killed runs) complete and verified, "
        f"{len(unfinished)} absent ({staged} left a hidden staging "
        f"folder, swept by the next restore); seed {seed}; runs of "
        f"{runs.duration['locked=False']:.2f}s, locked {runs.duration['locked=True']:.2f}s",
        flush=True,
    )


def _pg_schemas() -> set[str]:
    dsn = os.environ["CARACAL_STORE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    return {row[0] for row in rows}


# ---- 3. the disk filling up while an archive is written --------------------------------------------
class _FillingSink:
    """The archive file, with `room` bytes of disk left."""

    def __init__(self, inner: Any, room: int) -> None:
        self.inner, self.room = inner, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.inner.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# The abandoned gzip stream may complain when collected (see tests/backup/test_interruption.py).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_backup_create_with_the_disk_filling_up(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    monkeypatch.setenv(LOCK_ENV, LOCK_KEY)
    root = build_workspace(WORKSPACE, checkpoint_every=50)
    populate(WORKSPACE, 60)
    out = tmp_path / "archives"
    out.mkdir()
    sizes = {}
    for locked in (False, True):
        extra = ("--lock-key-env", LOCK_ENV) if locked else ()
        made = ok(run_cli("backup", "create", "-o", str(out / f"full-{locked}"), *extra, "--json"))
        sizes[locked] = made.json()["size"]
    real = ArchiveWriter
    for n in range(FULL_DISKS):
        locked = n % 2 == 1
        room = rng.randrange(sizes[locked])

        def filling(
            sink: Any, lock_key: str | None, on_bytes: Any = None, *, room: int = room
        ) -> Any:
            return real(cast(BinaryIO, _FillingSink(sink, room)), lock_key, on_bytes)

        target = out / f"b{n}.tar.gz"
        extra = ("--lock-key-env", LOCK_ENV) if locked else ()
        with monkeypatch.context() as mp:
            mp.setattr(service_module, "ArchiveWriter", filling)
            result = run_cli("backup", "create", "-o", str(target), *extra)
        assert result.code == ExitCode.UNAVAILABLE, result
        assert "no space left" in result.stderr.lower(), result
        assert not target.exists()
        assert sorted(p.name for p in out.iterdir()) == ["full-False", "full-True"]
        assert [p for p in (root / "cache").iterdir() if p.name.startswith("backup-")] == []
        with Caracal.open(WORKSPACE) as app:
            report = app.ledger.verify()
            assert report.ok, report.problem
    events = ok(run_cli("ledger", "list", "--type", "backup.created", "--json")).json()
    assert len(events) == 2  # only the two complete archives were recorded
    print(
        f"\nBACKUP FULL DISK: {FULL_DISKS} creates failed at a random byte "
        f"(of {sizes[False]:,} / {sizes[True]:,}), none left a file (seed {seed})",
        flush=True,
    )
