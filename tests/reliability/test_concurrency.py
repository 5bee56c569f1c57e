"""Proving ground, concurrency: four processes issuing, delegating and validating, and one
revoking, against one workspace, on SQLite and on PostgreSQL (a scratch database).

    .venv/bin/pytest tests/reliability/test_concurrency.py -q -s                       # short
    CARACAL_PROVING=long .venv/bin/pytest tests/reliability/test_concurrency.py -q -s  # long

Short mode (the default, what CI runs) works for 15 s per backend, so the file takes about a
minute; long mode (`CARACAL_PROVING=long`) works for the full 60 s per backend. `-s` shows the
figures, one line per backend:

    CONCURRENCY SQLite 60 s: 4 issuers+validators, 1 revoker: 1,234 ops/s (issue 300/s, ...)

Each worker is a separate process (`tests/reliability/concurrency_worker.py`) with its own
`Caracal` facade, the service layer behind the CLI. The test fails when:

- a worker is not finished within its time plus a grace period (a deadlock or a hang: the
  parent kills every worker and says which one hung), or exits abnormally;
- any facade call raised anything (a "database is locked" reaching a user included), or a
  validation was denied for any reason other than a revocation;
- afterwards: the ledger chain does not verify; a mandate the revoker revoked (its target or a
  descendant) does not deny with MANDATE_REVOKED; a mandate a worker issued is missing, or the
  store holds one nobody issued; a descendant of a revoked mandate is not revoked itself; a
  refusal a worker saw was not explained by a revocation; the ledger's issue and revocation
  events do not match what the workers did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
from caracal.services.logs import detach_workspace_log
from caracal.services.workspaces import WorkspaceManager
from tests.reliability.concurrency_worker import ACTION, RESOURCE, populate
from tests.support.files import write_atomically

LONG = os.environ.get("CARACAL_PROVING") == "long"
SECONDS = 60 if LONG else 15
ISSUERS = 4
WORKSPACE = "proving"
READY_TIMEOUT_S = 60.0  # all workers opened their facade
GRACE_S = 30.0  # after the working time: longer than this is a hang
REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

pytestmark = pytest.mark.timeout(SECONDS + 240)


@dataclass
class Worker:
    name: str
    role: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-3000:]


@pytest.fixture
def workspace(backend: str, home: Path) -> Iterator[str]:
    WorkspaceManager().create(WORKSPACE)
    app = Caracal.open(WORKSPACE, actor="proving:setup")
    try:
        populate(app)
    finally:
        app.close()
        detach_workspace_log(app.paths.log_file)
    yield backend


def test_issuers_and_a_revoker_on_one_workspace(workspace: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    workers = _start_workers(run_dir)
    try:
        _wait_until_ready(workers, run_dir)
        write_atomically(run_dir / "go", repr(time.time() + 0.2))
        _wait_until_done(workers, time.monotonic() + 0.2 + SECONDS + GRACE_S)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(10)

    for worker in workers:
        assert worker.process.returncode == 0, (
            f"{worker.name} exited with {worker.process.returncode}:\n{worker.tail()}"
        )
    reports = [json.loads((run_dir / f"{w.name}.json").read_text()) for w in workers]
    print("\n" + _summary(workspace, reports))
    errors = [(r["name"], e) for r in reports for e in r["errors"]]
    total_errors = sum(r["error_count"] for r in reports)
    assert total_errors == 0, f"{total_errors} error(s) reached a worker; first ones: " + "\n".join(
        f"{name} {e['op']}: {e['type']}: {e['message']}\n{e.get('traceback', '')}"
        for name, e in errors[:5]
    )
    assert all(r["counts"].get("issue", 0) > 0 for r in reports if r["role"] == "issuer")
    assert sum(r["counts"].get("revoke", 0) for r in reports) > 0, "the revoker revoked nothing"

    _check_afterwards(reports)


# ---- the workers ------------------------------------------------------------------------------
def _start_workers(run_dir: Path) -> list[Worker]:
    roles = [(f"issuer-{i}", "issuer") for i in range(ISSUERS)] + [("revoker", "revoker")]
    workers = []
    for seed, (name, role) in enumerate(roles):
        log = run_dir / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "tests.reliability.concurrency_worker",
            "--role",
            role,
            "--name",
            name,
            "--workspace",
            WORKSPACE,
            "--seconds",
            str(SECONDS),
            "--dir",
            str(run_dir),
            "--seed",
            str(seed),
        ]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        workers.append(Worker(name, role, process, log))
    return workers


def _wait_until_ready(workers: list[Worker], run_dir: Path) -> None:
    limit = time.monotonic() + READY_TIMEOUT_S
    while not all((run_dir / f"ready-{w.name}").exists() for w in workers):
        for worker in workers:
            if worker.process.poll() is not None:
                pytest.fail(f"{worker.name} exited before the start:\n{worker.tail()}")
        if time.monotonic() > limit:
            late = [w.name for w in workers if not (run_dir / f"ready-{w.name}").exists()]
            pytest.fail(f"not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(late)}")
        time.sleep(0.02)


def _wait_until_done(workers: list[Worker], limit: float) -> None:
    while any(w.process.poll() is None for w in workers):
        if time.monotonic() > limit:
            hung = [w for w in workers if w.process.poll() is None]
            pytest.fail(
                f"{', '.join(w.name for w in hung)} still running {GRACE_S:.0f} s after the "
                f"{SECONDS} s run (deadlock or hang); output of {hung[0].name}:\n{hung[0].tail()}"
            )
        time.sleep(0.05)


# ---- figures ----------------------------------------------------------------------------------
KINDS = ("issue", "delegate", "validate", "revoke")


def _summary(backend: str, reports: list[dict[str, Any]]) -> str:
    window = max(r["seconds"] for r in reports)
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report["counts"])
    per_kind = ", ".join(f"{kind} {counts[kind] / window:,.0f}/s" for kind in KINDS)
    total = sum(counts[kind] for kind in KINDS) / window
    errors = sum(r["error_count"] for r in reports)
    worst = {
        kind: max(r["latency"][kind][2] for r in reports if kind in r["latency"])
        for kind in KINDS
        if any(kind in r["latency"] for r in reports)
    }
    p99 = {
        kind: max(r["latency"][kind][1] for r in reports if kind in r["latency"]) for kind in worst
    }
    return (
        f"CONCURRENCY {LABELS[backend]} {SECONDS} s: {ISSUERS} issuers+validators, 1 revoker: "
        f"{total:,.0f} ops/s ({per_kind}), {errors} errors\n"
        f"  {sum(counts[k] for k in KINDS):,} operations in {window:.1f} s; "
        f"{counts['revoked_mandates']:,} mandates revoked (cascades included), "
        f"{counts['validate_denied']:,} validations denied after a revocation, "
        f"{counts['delegate_refused']:,} delegations refused (source revoked); "
        "latency p99/max: "
        + ", ".join(f"{k} {p99[k] * 1000:.0f}/{worst[k] * 1000:.0f} ms" for k in worst)
    )


# ---- afterwards -------------------------------------------------------------------------------
def _check_afterwards(reports: list[dict[str, Any]]) -> None:
    issued = [m for r in reports for m in r["issued"]]
    revoked = [m for r in reports for m in r["revoked"]]
    targets = [m for r in reports for m in r["targets"]]
    denied = [(m, code) for r in reports for m, code in r["denied"]]
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report["counts"])

    app = Caracal.open(WORKSPACE, actor="proving:check")
    try:
        verified = app.ledger.verify()
        assert verified.ok, f"the ledger does not verify: {verified.problem}"

        rows = {row["id"]: row for row in app.mandates.listing()}
        missing = [m for m in issued if m not in rows]
        assert not missing, f"{len(missing)} issued mandate(s) missing, e.g. {missing[:3]}"
        assert len(set(issued)) == len(issued), "a mandate id was handed out twice"
        assert set(rows) == set(issued), "the store holds mandates no worker issued"

        assert len(set(revoked)) == len(revoked), "a mandate was revoked twice"
        assert set(targets) <= set(revoked), "a revocation target was revoked already"
        is_revoked = {m for m, row in rows.items() if row["revoked_at"] is not None}
        assert set(revoked) == is_revoked, (
            f"revoked by the revoker but not in the store: {sorted(set(revoked) - is_revoked)[:3]}"
            f"; revoked in the store but by nobody: {sorted(is_revoked - set(revoked))[:3]}"
        )
        # A delegation racing the revocation of its source must not outlive it.
        orphans = [
            m
            for m, row in rows.items()
            if row["parent_id"] in is_revoked and row["revoked_at"] is None
        ]
        assert not orphans, (
            f"{len(orphans)} mandate(s) not revoked although their parent is, e.g. "
            + ", ".join(f"{m} (parent {rows[m]['parent_id']})" for m in orphans[:3])
        )
        unexplained = [(m, code) for m, code in denied if not _revoked_at_or_above(m, rows)]
        assert not unexplained, f"refusals without a revocation: {unexplained[:3]}"

        wrong = {}
        for mandate in revoked:
            decision = app.validation.validate(ACTION, RESOURCE, mandate_id=mandate)
            if decision.reason_code != "MANDATE_REVOKED":
                wrong[mandate] = decision.reason_code
        assert not wrong, f"revoked mandates that do not deny MANDATE_REVOKED: {wrong}"

        def events(kind: str) -> list[dict[str, Any]]:
            return list(app.ledger.iter_events(LedgerFilter(types=[kind])))

        assert len(events("mandate.issued")) == counts["issue"]
        assert len(events("mandate.delegated")) == counts["delegate"]
        assert sorted(e["mandate_id"] for e in events("mandate.revoked")) == sorted(revoked)
        allowed = events("validation.allowed")
        revocations = {e["mandate_id"]: e["seq"] for e in events("mandate.revoked")}
        assert len(allowed) == counts["validate_allowed"]
        # The workers' denials plus the MANDATE_REVOKED check just above.
        assert len(events("validation.denied")) == counts["validate_denied"] + len(revoked)
        # Not a failure: a decision read the mandate before the revocation committed, and was
        # appended after it (possible on PostgreSQL, where only the ledger append serialises).
        late = sum(1 for e in allowed if e["seq"] > revocations.get(e["mandate_id"], e["seq"]))
        print(f"  afterwards: ledger of {verified.events:,} events verifies; {len(revoked):,} "
              f"revoked mandates deny; {len(issued):,} issued mandates all present; "
              f"{late} allowed decisions recorded after their mandate's revocation event")  # fmt: skip
    finally:
        app.close()
        detach_workspace_log(app.paths.log_file)


def _revoked_at_or_above(mandate: str, rows: dict[str, dict[str, Any]]) -> bool:
    current: str | None = mandate
    while current is not None:
        if rows[current]["revoked_at"] is not None:
            return True
        current = rows[current]["parent_id"]
    return False
