"""The ledger end to end: recording, `caracal ledger list|verify|export|checkpoint`, concurrent
writers, the hashing core and the two-process walk. Tampering is in test_ledger_tamper.py,
heads kept outside the store and proofs in test_ledger_heads.py."""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from caracal.cli.exit_codes import ExitCode
from caracal.core.canonical import canonical_json
from caracal.core.ledger import (
    GENESIS_HASH,
    ChainWalk,
    NewEvent,
    Row,
    event_json,
    seal,
)
from caracal.services.facade import Caracal
from caracal.store import ledger_scan
from tests.authority.ledger_world import (
    COLUMNS,
    READ,
    REPOS,
    SCENARIO_TYPES,
    WRITE,
    Scenario,
    assert_intact,
    assert_tampered,
    cli,
    count_rows,
    issue,
    listed,
    prepare_workspace,
    seqs,
    sql,
    stored_rows,
    verify_report,
)
from tests.support.cli import run_cli

# ---- 1. a fresh ledger -------------------------------------------------------------------------


def test_scenario_is_recorded_in_order_and_verifies(scenario: Scenario) -> None:
    report = verify_report()
    assert report["ok"] is True and report["problem"] is None, report
    assert report["events"] == report["head_seq"] == count_rows("ledger_events") == 13
    assert report["checkpoints"] == 0  # none kept: fewer events than `checkpoint_every`
    assert report["head"]["size"] == 13 and report["head"]["root"] == report_root()
    assert report["state_rows"] > 0
    human = cli("ledger", "verify").stdout
    assert human.startswith("Ledger intact: 13 events, root "), human
    assert "state rows match the events" in human
    assert "head file (keys/ledger-head.json): consistent" in human

    events = listed()
    assert [e["type"] for e in events] == SCENARIO_TYPES
    assert [e["seq"] for e in events] == list(range(1, 14))
    assert events[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))

    by_seq = {e["seq"]: e for e in events}
    assert by_seq[3]["principal_id"] == scenario.alice and by_seq[3]["payload"]["name"] == "alice"
    assert (by_seq[6]["mandate_id"], by_seq[6]["principal_id"]) == (scenario.first, scenario.orch)
    assert by_seq[6]["payload"]["issuer_id"] == scenario.alice
    assert by_seq[7]["reason_code"] == "ALLOWED" and by_seq[7]["payload"]["action"] == READ
    assert by_seq[8]["reason_code"] == "ACTION_OUT_OF_SCOPE"
    assert by_seq[9]["reason_code"] == "POLICY_VALIDITY_EXCEEDED"
    assert by_seq[9]["principal_id"] == scenario.orch and by_seq[9]["mandate_id"] is None
    assert by_seq[9]["payload"]["ttl"] == 7200
    assert by_seq[10]["mandate_id"] == scenario.second
    assert by_seq[11]["mandate_id"] == scenario.first
    assert (by_seq[12]["mandate_id"], by_seq[12]["reason_code"]) == (
        scenario.first,
        "MANDATE_REVOKED",
    )
    assert (by_seq[13]["mandate_id"], by_seq[13]["reason_code"]) == (scenario.second, "ALLOWED")


def report_root() -> str:
    """The Merkle root over the stored events, computed here from their hashes."""
    from caracal.core.merkle import leaf_hash, root_of

    return root_of(leaf_hash(row[9]) for row in stored_rows()).hex()


def test_checkpoint_command_keeps_the_head_once(scenario: Scenario) -> None:
    made = cli("ledger", "checkpoint").stdout
    assert made.startswith("Kept the signed head at event 13"), made
    kept = listed("--type", "ledger.head_kept")
    assert [(e["seq"], e["payload"]["size"]) for e in kept] == [(14, 13)]
    again = cli("ledger", "checkpoint").stdout
    assert again.startswith("Nothing new"), again
    report = verify_report()
    assert report["ok"] is True and report["checkpoints"] == 1 and report["events"] == 14, report


def test_heads_are_kept_every_checkpoint_every_events(backend: str, home: Path) -> None:
    prepare_workspace()  # events 1-5
    cli("config", "set", "ledger.checkpoint_every", "10")
    for _ in range(5):
        issue()  # events 6-10: the fifth crosses 10, and its head is kept (event 11)
    with Caracal.open() as app:
        app.store.write(
            lambda conn: app.ledger.record(conn, *(NewEvent("test.filler", {}) for _ in range(12)))
        )  # events 12-23 cross 20: one write, one kept head (event 24)
    kept = [(e["seq"], e["payload"]["size"]) for e in listed("--type", "ledger.head_kept")]
    assert kept == [(11, 10), (24, 23)], kept
    assert_intact(24)
    assert verify_report()["checkpoints"] == 2


# ---- 3. listing and filtering ------------------------------------------------------------------


def test_list_filters(scenario: Scenario) -> None:
    assert seqs("--type", "mandate.issued") == [6, 10]
    assert seqs("--type", "mandate.issue") == []  # exact unless it ends in '.'
    assert seqs("--type", "validation.") == [7, 8, 12, 13]
    assert seqs("--type", "principal.registered", "--type", "policy.") == [3, 4, 5]
    assert seqs("--principal", "alice") == [3]
    assert seqs("--principal", "orch") == list(range(4, 14))
    assert seqs("--principal", scenario.orch, "--type", "mandate.") == [6, 9, 10, 11]
    assert seqs("--mandate", scenario.first) == [6, 7, 8, 11, 12]
    assert seqs("--mandate", scenario.second, "--type", "validation.") == [13]
    assert seqs("--reason-code", "ACTION_OUT_OF_SCOPE") == [8]
    assert seqs("--reason-code", "MANDATE_REVOKED") == [12]
    assert seqs("--reason-code", "NO_SUCH_CODE") == []
    # --limit keeps the newest events and still prints them oldest first.
    assert seqs("--limit", "3") == [11, 12, 13]
    assert seqs("--type", "validation.", "--limit", "2") == [12, 13]
    assert cli("ledger", "list", "--json").json()[0]["seq"] == 1  # default limit 50 covers all


def test_list_since(scenario: Scenario) -> None:
    assert seqs("--since", "1h") == list(range(1, 14))
    ts10 = listed()[9]["ts"]
    iso = datetime.fromtimestamp(ts10 / 1e6, tz=UTC).isoformat()
    assert seqs("--since", iso) == [10, 11, 12, 13]
    assert seqs("--since", iso.replace("+00:00", "Z")) == [10, 11, 12, 13]
    assert seqs("--since", "2999-01-01T00:00Z") == []
    bad = run_cli("ledger", "list", "--since", "last tuesday")
    assert bad.code == ExitCode.INVALID and "--since" in bad.stderr, bad


def test_list_output(scenario: Scenario) -> None:
    result = cli("ledger", "list", "--json", "--type", "validation.denied")
    assert result.stdout.lstrip().startswith("[") and result.stdout.rstrip().endswith("]")
    events = json.loads(result.stdout)  # nothing but JSON on stdout
    assert [e["payload"]["action"] for e in events] == [WRITE, READ]
    assert set(events[0]) == set(COLUMNS)

    table = cli("ledger", "list", "--type", "mandate.").stdout.splitlines()
    assert table[0].split()[:3] == ["SEQ", "TIME", "TYPE"]
    assert [line.split()[0] for line in table[1:]] == ["6", "9", "10", "11"]
    assert "POLICY_VALIDITY_EXCEEDED" in table[2]
    assert cli("ledger", "list", "--type", "nothing.").stdout.strip() == "No matching events."
    assert run_cli("ledger", "list", "--principal", "nobody").code == ExitCode.NOT_FOUND
    assert run_cli("ledger", "list", "--limit", "0").code == ExitCode.USAGE


@pytest.mark.parametrize("prefix", ["_alidation.", "VALIDATION."])
def test_type_prefix_is_matched_literally(scenario: Scenario, prefix: str) -> None:
    assert seqs("--type", prefix) == []


# ---- 4. export ---------------------------------------------------------------------------------


def test_export_json_has_every_event_and_no_token(scenario: Scenario, tmp_path: Path) -> None:
    # Present the token itself too, so the ledger has every chance to leak it.
    token_args = ("--token", scenario.first_token, "--action", READ, "--resource", REPOS)
    by_token = run_cli("mandate", "validate", *token_args)
    assert by_token.code == ExitCode.DENIED, by_token  # revoked
    out = tmp_path / "ledger.json"
    result = cli("ledger", "export", "--output", str(out), "--format", "json")
    assert "Exported 14 events" in result.stderr, result
    raw = out.read_text()
    assert scenario.first_token not in raw and scenario.first_token.split(".")[2] not in raw
    events = json.loads(raw)
    assert [e["seq"] for e in events] == list(range(1, 15))
    assert [e["type"] for e in events[:13]] == SCENARIO_TYPES
    assert events == listed()  # exactly what the store holds
    # An auditor can re-verify the exported chain without the store.
    rows = [
        tuple(canonical_json(e[c]) if c == "payload" else e[c] for c in COLUMNS) for e in events
    ]
    walk = ChainWalk(wanted=set())
    assert walk.feed(rows), walk.failure  # type: ignore[arg-type]
    assert walk.count == 14


def test_export_csv_has_every_event_and_no_token(scenario: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "ledger.csv"
    result = cli("ledger", "export", "-o", str(out), "--format", "csv")
    assert "Exported 13 events" in result.stderr, result
    raw = out.read_text(encoding="utf-8")
    assert scenario.first_token not in raw
    with out.open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table[0] == list(COLUMNS)
    assert [int(r[0]) for r in table[1:]] == list(range(1, 14))
    assert [r[2] for r in table[1:]] == SCENARIO_TYPES
    stored = stored_rows()
    assert [r[7] for r in table[1:]] == [row[7] for row in stored]  # payload as stored
    assert [r[9] for r in table[1:]] == [row[9] for row in stored]


def test_export_unknown_format_is_a_clear_error(scenario: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "ledger.xml"
    result = run_cli("ledger", "export", "-o", str(out), "--format", "xml")
    assert result.code == ExitCode.INVALID, result
    assert "xml" in result.stderr and "json or csv" in result.stderr
    assert result.stderr.count("\n") == 1 and not out.exists()


# ---- 5. concurrency ----------------------------------------------------------------------------

ROUNDS = 10  # each round is an issuance and a validation: 20 operations per process


def _issue_and_validate(worker: int, barrier: Any, queue: Any) -> None:
    try:
        from tests.support.cli import run_cli as child_cli

        barrier.wait(60)
        outcomes: list[tuple[str, int, str]] = []
        for i in range(ROUNDS):
            issued = child_cli(
                *("mandate", "issue", "--issuer", "alice", "--subject", "orch", "--json"),
                *("--resource", REPOS, "--action", READ, "--ttl", "10m"),
            )
            if issued.code != 0:
                outcomes.append(("issue", issued.code, issued.stderr))
                continue
            mandate_id = issued.json()["id"]
            outcomes.append(("issue", 0, mandate_id))
            action = READ if i % 2 == 0 else WRITE
            checked = child_cli(
                "mandate", "validate", mandate_id, "--action", action, "--resource", REPOS
            )
            outcomes.append((action, checked.code, mandate_id))
        queue.put((worker, outcomes))
    except BaseException as exc:  # never leave the parent waiting
        queue.put((worker, [("crash", -1, repr(exc))]))


def test_two_processes_writing_at_once_leave_a_complete_chain(backend: str, home: Path) -> None:
    prepare_workspace()  # events 1-5
    cli("config", "set", "ledger.checkpoint_every", "10")
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_issue_and_validate, args=(n, barrier, queue)) for n in range(2)]
    for child in children:
        child.start()
    outcomes = [queue.get(timeout=240) for _ in children]
    for child in children:
        child.join(60)

    performed = [op for _, ops in outcomes for op in ops]
    assert [op for op in performed if op[0] == "issue" and op[1] != 0] == []
    assert len(performed) == 2 * 2 * ROUNDS, performed
    expected_codes = {READ: 0, WRITE: ExitCode.DENIED}
    assert [op for op in performed if op[0] != "issue" and op[1] != expected_codes[op[0]]] == []

    report = verify_report()
    assert report["ok"] is True, report
    events = listed()
    kept = [e for e in events if e["type"] == "ledger.head_kept"]
    total = 5 + 2 * 2 * ROUNDS + len(kept)
    assert report["events"] == report["head_seq"] == total
    # Each multiple of 10 crossed kept one head, exactly once, whatever the interleaving.
    assert report["checkpoints"] == len(kept) >= (total - len(kept)) // 10
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    issued = sorted(e["mandate_id"] for e in events if e["type"] == "mandate.issued")
    assert issued == sorted(op[2] for op in performed if op[0] == "issue")
    decisions = sorted(
        (e["mandate_id"], e["payload"]["action"], e["type"])
        for e in events
        if e["type"].startswith("validation.")
    )
    kinds = {READ: "validation.allowed", WRITE: "validation.denied"}
    assert decisions == sorted((op[2], op[0], kinds[op[0]]) for op in performed if op[0] != "issue")


def test_verify_is_not_fooled_by_a_write_landing_while_it_reads(
    backend: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process appends (legitimately) after verify read the head but before it scanned
    the events. The interleaving is forced here; under load it happens by itself."""
    prepare_workspace()
    original = ledger_scan.walk_cursor

    def with_concurrent_append(*args: Any, **kwargs: Any) -> Any:
        with Caracal.open() as other:
            other.store.write(lambda c: other.ledger.record(c, NewEvent("test.concurrent", {})))
        return original(*args, **kwargs)

    monkeypatch.setattr(ledger_scan, "walk_cursor", with_concurrent_append)
    during = run_cli("ledger", "verify")
    monkeypatch.setattr(ledger_scan, "walk_cursor", original)
    assert count_rows("ledger_events") == 6  # the concurrent append did commit
    assert_intact(6)
    assert during.code == 0, during


def _transient_error(backend: str) -> OperationalError:
    if backend == "postgresql":
        import psycopg

        return OperationalError(
            "UPDATE ledger_head", {}, psycopg.errors.DeadlockDetected("deadlock")
        )
    return OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))


def test_a_retried_transaction_leaves_a_verifiable_checkpoint(backend: str, home: Path) -> None:
    cli("workspace", "create", "demo")
    cli("config", "set", "ledger.checkpoint_every", "10")
    attempts = 0
    with Caracal.open() as app:

        def work(conn: Any) -> None:
            nonlocal attempts
            attempts += 1
            app.ledger.record(conn, *(NewEvent("test.filler", {"n": n}) for n in range(12)))
            if attempts == 1:
                raise _transient_error(backend)  # what Store.write retries

        app.store.write(work)
    assert attempts == 2 and count_rows("ledger_events") == 14  # 1 + 12, and the kept head
    result = run_cli("ledger", "verify")
    assert result.code == 0, result


# ---- 6. the hashing core -----------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
OPTIONAL_TEXT = st.none() | ANY_TEXT
INT64 = st.integers(min_value=0, max_value=2**63 - 1)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    seq=INT64,
    ts=INT64,
    type_=ANY_TEXT,
    actor=OPTIONAL_TEXT,
    principal_id=OPTIONAL_TEXT,
    mandate_id=OPTIONAL_TEXT,
    reason_code=OPTIONAL_TEXT,
    payload=JSON_VALUES,
    prev_hash=ANY_TEXT,
)
def test_event_json_is_the_canonical_json_of_the_event(
    seq: int,
    ts: int,
    type_: str,
    actor: str | None,
    principal_id: str | None,
    mandate_id: str | None,
    reason_code: str | None,
    payload: Any,
    prev_hash: str,
) -> None:
    stored_payload = canonical_json(payload)
    fast = event_json(
        seq, ts, type_, actor, principal_id, mandate_id, reason_code, stored_payload, prev_hash
    )
    expected = canonical_json(
        {
            "actor": actor,
            "mandate_id": mandate_id,
            "payload": json.loads(stored_payload),
            "prev_hash": prev_hash,
            "principal_id": principal_id,
            "reason_code": reason_code,
            "seq": seq,
            "ts": ts,
            "type": type_,
        }
    )
    assert fast == expected
    assert fast.isascii()


NEW_EVENTS = st.builds(
    NewEvent,
    type=ANY_TEXT,
    payload=st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3),
    principal_id=OPTIONAL_TEXT,
    mandate_id=OPTIONAL_TEXT,
    reason_code=OPTIONAL_TEXT,
)


def _mutate(row: Row, column: int, chain_length: int) -> Row:
    value: Any = row[column]
    if column == 0:
        new: Any = value + chain_length + 1  # a gap
    elif column == 1:
        new = value + 1
    elif column == 7:
        new = canonical_json([json.loads(value)])  # still valid JSON, different content
    elif column in (8, 9):
        new = ("0" if value[0] != "0" else "1") + value[1:]  # one hex digit
    else:
        new = "x" if value is None else value + "x"
    return (*row[:column], new, *row[column + 1 :])


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(NEW_EVENTS, min_size=1, max_size=8),
    first_seq=st.integers(min_value=1, max_value=10**9),
    ts=INT64,
    actor=OPTIONAL_TEXT,
    data=st.data(),
)
def test_chain_walk_detects_any_single_mutated_row(
    events: list[NewEvent], first_seq: int, ts: int, actor: str | None, data: st.DataObject
) -> None:
    prev = "ab" * 32
    rows = seal(events, first_seq=first_seq, prev_hash=prev, ts_us=ts, actor=actor)
    intact = ChainWalk(wanted={rows[-1][0]}, expected_seq=first_seq, prev_hash=prev)
    assert intact.feed(rows) and intact.count == len(rows)
    assert intact.seen == {rows[-1][0]: rows[-1][9]}

    index = data.draw(st.integers(min_value=0, max_value=len(rows) - 1), label="row")
    column = data.draw(st.integers(min_value=0, max_value=len(COLUMNS) - 1), label="column")
    tampered = list(rows)
    tampered[index] = _mutate(rows[index], column, len(rows))
    walk = ChainWalk(wanted=set(), expected_seq=first_seq, prev_hash=prev)
    assert not walk.feed(tampered)
    assert walk.failure is not None and walk.failure.seq == rows[index][0], walk.failure
    assert walk.count == index


# ---- the two-process walk used for large ledgers -----------------------------------------------


@pytest.fixture
def halves(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """Force the large-ledger path (second half walked by a worker process) on the scenario."""
    import caracal.services.ledger_verify as ledger_service

    monkeypatch.setattr(ledger_service, "PARALLEL_VERIFY_MIN", 1)
    return scenario


def test_walking_in_halves_verifies_an_intact_ledger(halves: Scenario) -> None:
    assert_intact(13)


@pytest.mark.parametrize("seq", [3, 6, 7, 8, 9, 13])
def test_walking_in_halves_finds_an_altered_event_in_either_half(
    halves: Scenario, seq: int
) -> None:
    sql("UPDATE ledger_events SET actor = 'mallory' WHERE seq = :s", s=seq)
    assert_tampered(rf"event {seq} \(.*\): hash does not match")


@pytest.mark.parametrize("seq", [7, 9])
def test_walking_in_halves_checks_the_seams(halves: Scenario, seq: int) -> None:
    # 13 events: the first range is 1-6, the worker walks 7-8 and 9-13 (two trees).
    sql("DELETE FROM ledger_events WHERE seq = :s", s=seq)
    assert_tampered(rf"event {seq}: missing")


def test_walking_in_halves_sees_events_beyond_the_head(halves: Scenario) -> None:
    sql(
        "INSERT INTO ledger_events (seq, ts, type, actor, principal_id, mandate_id, reason_code, "
        "payload, prev_hash, hash) SELECT 14, ts, type, actor, principal_id, mandate_id, "
        "reason_code, payload, hash, hash FROM ledger_events WHERE seq = 13"
    )
    assert_tampered(r"the ledger head records event 13 but the last event is 14")
