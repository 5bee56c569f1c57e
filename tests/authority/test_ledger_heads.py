"""The signed head kept outside the store, and the proofs anyone can check.

- Rollback: the store put back to an older state (an old copy of store.db on SQLite, rows
  deleted and an old head row put back on PostgreSQL) is refused by the CLI, Flow and the
  runtime (whose /health says why), with two witnesses configured (a path and a Redis key)
  and even with the workspace's own head file gone; `caracal ledger accept-rollback` records
  the acceptance and everything works again.
- Proofs: `caracal ledger prove SEQ` and `ledger verify --since HEAD.json` print documents the
  store-free verifier (`python -m caracal.core.proofs`) accepts, and a tampered one it refuses.
- Incremental verify: walks only what came after the last verified head.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from caracal.cli.exit_codes import ExitCode
from caracal.flow.app import build_app
from caracal.services.facade import Caracal
from tests.authority.ledger_world import (
    READ,
    REPOS,
    Scenario,
    cli,
    issue,
    listed,
    sql,
    stored_rows,
    validate,
)
from tests.flow.conftest import mark_onboarded, until
from tests.support.cli import run_cli
from tests.support.runtime import serve

REDIS_URL = "redis://127.0.0.1:6379/0"


def workspace_dir(home: Path) -> Path:
    return home / "workspaces" / "demo"


def with_witnesses(home: Path, tmp_path: Path) -> tuple[Path, str]:
    """Name two witnesses in config.yaml: a file elsewhere and a Redis key."""
    witness_file = tmp_path / "elsewhere" / "demo-head.json"
    key = f"caracal-test:{uuid.uuid4().hex}"
    config = workspace_dir(home) / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    raw.setdefault("ledger", {})["witnesses"] = [
        {"path": str(witness_file)},
        {"redis_url": REDIS_URL, "redis_key": key},
    ]
    config.write_text(yaml.safe_dump(raw))
    return witness_file, key


def held_size(data: bytes | str | None) -> int | None:
    return None if data is None else int(json.loads(data)["size"])


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    for key in client.scan_iter("caracal-test:*"):
        client.delete(key)


def roll_back(backend: str, home: Path, saved: Any, later: list[str]) -> None:
    """Put the store back to the state `saved` (from `save_store`): on PostgreSQL by deleting
    what came after (events and their index, tree, kept heads, the mandates issued since) and
    putting the old head row back."""
    if backend == "sqlite":
        store = workspace_dir(home) / "store.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(saved, store)
        return
    head, size = saved
    for mandate in later:
        sql("DELETE FROM mandates WHERE id = :m", m=mandate)
    sql(f"DELETE FROM ledger_events WHERE seq > {size}")
    sql(f"DELETE FROM ledger_state_events WHERE seq > {size}")
    sql(f"DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > {size}")
    sql(f"DELETE FROM ledger_checkpoints WHERE size > {size}")
    columns = ", ".join(f"{k} = :{k}" for k in head if k != "id")
    sql(f"UPDATE ledger_head SET {columns} WHERE id = 1", **head)


def save_store(backend: str, home: Path, tmp_path: Path) -> Any:
    if backend == "sqlite":
        import sqlite3

        copy = tmp_path / "old-store.db"  # a consistent copy, as a file-level backup would be
        with sqlite3.connect(workspace_dir(home) / "store.db") as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        return copy
    from sqlalchemy import text

    with Caracal.open() as app, app.store.read() as conn:
        head = dict(conn.execute(text("SELECT * FROM ledger_head")).mappings().one())
    return head, head["seq"]


def test_a_rolled_back_store_is_refused_everywhere_until_accepted(
    scenario: Scenario,
    backend: str,
    home: Path,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    witness_file, key = with_witnesses(home, tmp_path)
    issue()  # event 14: the witnesses are fed from now on
    saved = save_store(backend, home, tmp_path)
    saved_size = stored_rows()[-1][0]
    later = issue().json()  # event 15
    token = later["token"]
    cli("mandate", "revoke", later["id"], "--yes")  # event 16: a revocation the rollback undoes
    time.sleep(0.2)
    assert held_size(witness_file.read_text()) == 16
    assert held_size(redis_client.get(key)) == 16

    roll_back(backend, home, saved, [later["id"]])
    # The workspace's own head file goes too: the witnesses alone must catch it.
    (workspace_dir(home) / "keys" / "ledger-head.json").unlink()

    # CLI: every command refuses, naming what the witnesses hold.
    refused = run_cli("mandate", "list")
    assert refused.code == ExitCode.INTEGRITY, refused
    assert "The ledger was rolled back" in refused.stderr, refused
    assert f"ends at event {saved_size}" in refused.stderr and "recorded event 16" in refused.stderr
    report = run_cli("ledger", "verify", "--json")
    assert report.code == ExitCode.INTEGRITY, report
    assert "rolled back" in report.json()["problem"], report
    copies = {c["source"]: c for c in report.json()["copies"]}
    assert copies[f"file {witness_file}"]["status"] == "inconsistent"
    assert copies[f"redis key {key}"]["status"] == "inconsistent"

    # Flow: opening the workspace shows the problem instead of the dashboard.
    mark_onboarded()
    shown = _flow_problem()
    assert "rolled back" in shown and "accept-rollback" in shown, shown

    # The runtime: starts, refuses every decision and says why on /health.
    with serve() as server:
        health = server.request("GET", "/health")
        assert health.status == 503, health
        body = health.json()
        assert "ledger" in body["failing"], body
        assert "rolled back" in body["dependencies"]["ledger"]["detail"], body
        decided = server.authorize(token=token, action=READ, resource=REPOS)
        assert decided.status == 503 and "rolled back" in decided.json()["reason"], decided

        # The operator looks, and accepts: recorded, and the copies follow.
        accepted = run_cli("ledger", "accept-rollback", "--yes", "--json")
        assert accepted.code == 0, accepted
        record = listed("--type", "ledger.rollback_accepted")
        assert len(record) == 1 and record[0]["seq"] == saved_size + 1
        kinds = {a["source"]: a["kind"] for a in record[0]["payload"]["accepted"]}
        assert kinds == {f"file {witness_file}": "rollback", f"redis key {key}": "rollback"}
        assert held_size(witness_file.read_text()) == saved_size + 1
        assert held_size(redis_client.get(key)) == saved_size + 1

        deadline = time.monotonic() + 10  # the runtime re-checks every 2 s while refusing
        while server.request("GET", "/health").status != 200:
            assert time.monotonic() < deadline, server.request("GET", "/health").body
            time.sleep(0.2)
        again = server.authorize(token=token, action=READ, resource=REPOS)
        assert again.status in (200, 401, 403), again  # decided (and recorded) again
    assert run_cli("mandate", "list").code == 0
    assert run_cli("ledger", "verify").code == 0
    nothing = run_cli("ledger", "accept-rollback", "--yes")
    assert nothing.code == 0 and "Nothing to accept" in nothing.stdout, nothing


def _flow_problem() -> str:
    import asyncio

    from caracal.flow.modals.problem import ProblemModal

    async def run() -> str:
        app = build_app()
        async with app.run_test(size=(140, 42)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ProblemModal), what="problem")
            return str(app.screen.message)

    return asyncio.run(run())


def test_the_head_file_follows_every_command(scenario: Scenario, home: Path) -> None:
    head_file = workspace_dir(home) / "keys" / "ledger-head.json"
    assert held_size(head_file.read_text()) == 13
    issue()
    assert held_size(head_file.read_text()) == 14
    shown = cli("ledger", "head", "--json").json()
    kept = json.loads(head_file.read_text())
    assert {k: v for k, v in shown.items() if k != "key_sha256"} == {
        k: v for k, v in kept.items() if k != "recorded_at"
    }
    assert len(shown["key_sha256"]) == 64


def test_a_forged_head_in_a_witness_is_ignored_not_believed(
    scenario: Scenario, home: Path, tmp_path: Path
) -> None:
    """A witness file someone wrote by hand (a bigger size, but no valid signature) cannot
    make Caracal refuse the workspace: only heads signed by a pinned key count."""
    witness_file, _ = with_witnesses(home, tmp_path)
    witness_file.parent.mkdir(parents=True)
    head = cli("ledger", "head", "--json").json()
    witness_file.write_text(json.dumps({**head, "size": 10_000}))
    assert run_cli("mandate", "list").code == 0
    report = run_cli("ledger", "verify", "--json").json()
    assert report["ok"] is True, report
    status = {c["source"]: c["status"] for c in report["copies"]}
    assert status[f"file {witness_file}"] == "holds a head that does not verify (ignored)"


# ---- proofs --------------------------------------------------------------------------------------


def check_proof(
    document: dict[str, Any], key: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"proof-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(document))
    return subprocess.run(
        [sys.executable, "-m", "caracal.core.proofs", "--key", str(key), str(path)],
        capture_output=True,
        text=True,
    )


def pinned_key(home: Path) -> Path:
    [key] = (workspace_dir(home) / "keys").glob("ledger-k_*.pub.pem")
    return key


def test_every_event_has_an_inclusion_proof_the_standalone_verifier_accepts(
    scenario: Scenario, home: Path, tmp_path: Path
) -> None:
    key = pinned_key(home)
    for seq in range(1, 14):
        proof = cli("ledger", "prove", str(seq), "--json").json()
        assert proof["event"]["seq"] == seq and proof["tree_size"] == 13
        checked = check_proof(proof, key, tmp_path)
        assert checked.returncode == 0, checked
        assert f"event {seq} is in the ledger of 13 events" in checked.stdout
    proof = cli("ledger", "prove", "6", "--json").json()
    # A proof altered anywhere is refused: the event, a path hash, the head.
    for label, altered in {
        "event": {
            **proof,
            "event": {
                **proof["event"],
                "payload": proof["event"]["payload"].replace("repos", "admin"),
            },
        },
        "path": {**proof, "audit_path": ["0" * 64, *proof["audit_path"][1:]]},
        "head": {**proof, "head": {**proof["head"], "size": 14}},
        "index": {**proof, "leaf_index": 6},
    }.items():
        refused = check_proof(altered, key, tmp_path)
        assert refused.returncode == 1 and "NOT VERIFIED" in refused.stderr, (label, refused)
    assert run_cli("ledger", "prove", "99").code == ExitCode.NOT_FOUND


def test_a_saved_head_is_proved_to_be_a_prefix_of_today(
    scenario: Scenario, home: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "head.json"
    saved.write_text(cli("ledger", "head", "--json").stdout)
    for _ in range(5):
        issue()
    human = cli("ledger", "verify", "--since", str(saved)).stdout
    assert human.startswith("Consistent: the ledger of 18 events extends the head of 13 events")
    proof = cli("ledger", "verify", "--since", str(saved), "--json").json()
    checked = check_proof(proof, pinned_key(home), tmp_path)
    assert checked.returncode == 0 and "18 events extends the ledger of 13" in checked.stdout

    # An event's stored hash rewritten: the store can no longer prove today's signed tree.
    sql("UPDATE ledger_events SET hash = :h WHERE seq = 5", h="0" * 64)
    broken = run_cli("ledger", "verify", "--since", str(saved))
    assert broken.code == ExitCode.INTEGRITY and "does not prove it" in broken.stderr, broken

    forged = {**json.loads(saved.read_text()), "size": 12}
    saved.write_text(json.dumps(forged))
    refused = run_cli("ledger", "verify", "--since", str(saved))
    assert refused.code == ExitCode.INTEGRITY and "not signed" in refused.stderr, refused


def test_incremental_verify_walks_only_what_is_new(scenario: Scenario) -> None:
    with Caracal.open() as app:
        full = app.ledger.verify(incremental=True)  # nothing verified yet: everything
        assert full.ok and full.since == 0 and full.events == 13 and full.state_rows > 0
        issue()
        issue()
        step = app.ledger.verify(incremental=True)
        assert step.ok and step.since == 13 and step.events == 2 and step.head_seq == 15
        again = app.ledger.verify(incremental=True)
        assert again.ok and again.since == 15 and again.events == 0
    # A change below the verified point is for the full verify to find, and it does.
    sql("UPDATE ledger_events SET actor = 'mallory' WHERE seq = 3")
    with Caracal.open(check_ledger=False) as app:
        assert app.ledger.verify(incremental=True).ok  # (it only walks what is new)
        report = app.ledger.verify()
        assert not report.ok and report.problem.startswith("event 3 "), report.problem
    validate(scenario.second)  # decisions still work: the open check reads the head only


def test_an_http_witness_receives_every_head_and_a_dead_witness_blocks_nothing(
    scenario: Scenario, home: Path, tmp_path: Path
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from caracal.core.keys import load_public
    from caracal.core.tree_head import TreeHead
    from tests.support.runtime import free_port

    received: list[dict[str, Any]] = []

    class Witness(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Witness)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = workspace_dir(home) / "config.yaml"
        raw = yaml.safe_load(config.read_text())
        raw.setdefault("ledger", {})["witnesses"] = [
            {"http_url": f"http://127.0.0.1:{server.server_address[1]}/heads"},
            {"redis_url": f"redis://127.0.0.1:{free_port()}/0", "timeout_seconds": 0.5},
        ]
        config.write_text(yaml.safe_dump(raw))
        issue()
        issue()
        sizes = [doc["size"] for doc in received]
        assert sizes == sorted(sizes) and sizes[-1] == 15, sizes
        key = load_public(pinned_key(home).read_text())
        assert all(TreeHead.from_dict(doc).verify(key) for doc in received)
        # The dead Redis witness slowed nothing down and stopped nothing; verify says so.
        report = run_cli("ledger", "verify", "--json").json()
        assert report["ok"] is True, report
        [dead] = [c for c in report["copies"] if c["source"].startswith("redis key")]
        assert dead["status"].startswith("unreachable"), dead
    finally:
        server.shutdown()
        server.server_close()
