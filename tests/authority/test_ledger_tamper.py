"""Someone who can write the store (not the workspace folder, not the master key) against the
ledger: every attack is named by `caracal ledger verify` with exit 7, and none of them makes a
decision go the attacker's way.

Events: altered, rewritten with recomputed hashes (and a recomputed tree), deleted, swapped,
truncated with the head fixed, an old signed head replayed. Heads: the head row or a kept head
deleted. State: every decision-relevant column of every authority table updated, rows
injected. And `checkpoint_every` changed both ways."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from caracal.cli.exit_codes import ExitCode
from caracal.core.canonical import canonical_json
from caracal.core.keys import generate_key_pair
from caracal.core.ledger import event_hash
from caracal.core.merkle import Frontier, leaf_hash
from caracal.services.facade import Caracal
from tests.authority.ledger_world import (
    COLUMNS,
    MIDDLE,
    READ,
    REPOS,
    WRITE,
    Scenario,
    assert_intact,
    assert_tampered,
    cli,
    issue,
    longer_expiry,
    rehash,
    replace_row,
    sql,
    stored_rows,
    validate,
)
from tests.support.cli import run_cli


def head_row() -> dict[str, Any]:
    with Caracal.open(check_ledger=False) as app, app.store.read() as conn:
        return dict(conn.execute(text("SELECT * FROM ledger_head")).mappings().one())


def set_head_row(values: dict[str, Any]) -> None:
    columns = ", ".join(f"{k} = :{k}" for k in values if k != "id")
    sql(f"UPDATE ledger_head SET {columns} WHERE id = 1", **values)


def refused_at_open() -> None:
    """Any other command now refuses the workspace (exit 7), naming what is wrong."""
    result = run_cli("mandate", "list")
    assert result.code == ExitCode.INTEGRITY, result
    assert result.stderr.startswith("error: ") and "ledger" in result.stderr, result


# ---- events -------------------------------------------------------------------------------------

# A new value for one column of an event, computed from the stored row.
ALTERATIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "seq": lambda row: row["seq"] + 1000,
    "ts": lambda row: row["ts"] - 3_600_000_000,
    "type": lambda row: "mandate.revoked",
    "actor": lambda row: "mallory",
    "principal_id": lambda row: "pr_0000000000000000",
    "mandate_id": lambda row: "mnd_00000000000000000000",
    "reason_code": lambda row: "ALLOWED",  # NULL before
    "payload": lambda row: longer_expiry(row["payload"]),
    "prev_hash": lambda row: "f" * 64,
    "hash": lambda row: "e" * 64,
}


@pytest.mark.parametrize("column", list(ALTERATIONS))
def test_changing_any_column_of_an_event_is_detected(scenario: Scenario, column: str) -> None:
    assert_intact(13)
    row = dict(zip(COLUMNS, stored_rows()[MIDDLE - 1], strict=True))
    new = ALTERATIONS[column](row)
    assert new != row[column]
    sql(f'UPDATE ledger_events SET "{column}" = :value WHERE seq = :seq', value=new, seq=MIDDLE)
    assert_tampered(rf"^Ledger TAMPERED: event {MIDDLE}\b")


def test_altering_an_event_and_its_own_hash_breaks_the_next_link(scenario: Scenario) -> None:
    assert_intact(13)
    rows = stored_rows()
    seq, ts, type_, actor, principal, mandate, reason, payload, prev, _ = rows[MIDDLE - 1]
    forged = (seq, ts, type_, actor, principal, mandate, reason, longer_expiry(payload), prev)
    replace_row((*forged, event_hash(*forged)))
    assert_tampered(rf"^Ledger TAMPERED: event {MIDDLE + 1} \(validation\.allowed\): prev_hash")


def _rewrite_from_middle() -> list[Any]:
    """The careful attacker: alter event 6 and recompute every later hash."""
    rows = stored_rows()
    tail = list(rows[MIDDLE - 1 :])
    tail[0] = (*tail[0][:7], longer_expiry(tail[0][7]), *tail[0][8:])
    for new in rehash(tail):
        replace_row(new)
    return stored_rows()


def test_rewriting_history_with_recomputed_hashes_is_caught_by_the_signed_head(
    scenario: Scenario,
) -> None:
    assert_intact(13)
    rows = _rewrite_from_middle()
    set_head_row({"hash": rows[-1][9]})
    assert_tampered(r"the ledger head's signature does not verify \(the head was forged\)")
    refused_at_open()


def test_rewriting_history_and_the_whole_tree_is_still_caught(scenario: Scenario) -> None:
    """Events, tree root and frontier all recomputed: only the signature, which needs the
    ledger key in the vault, is missing."""
    assert_intact(13)
    rows = _rewrite_from_middle()
    tree = Frontier()
    tree.extend(leaf_hash(row[9]) for row in rows)
    set_head_row({"hash": rows[-1][9], "root": tree.root().hex(), "frontier": tree.encode()})
    assert_tampered(r"the ledger head's signature does not verify")


def test_deleting_an_event_in_the_middle_is_detected(scenario: Scenario) -> None:
    assert_intact(13)
    sql("DELETE FROM ledger_events WHERE seq = :seq", seq=MIDDLE)
    assert_tampered(rf"^Ledger TAMPERED: event {MIDDLE}: missing: the sequence jumps from 5 to 7")


def test_swapping_two_events_is_detected(scenario: Scenario) -> None:
    assert_intact(13)
    rows = stored_rows()
    a, b = rows[MIDDLE - 1], rows[MIDDLE]
    replace_row((MIDDLE, *b[1:]), MIDDLE)
    replace_row((MIDDLE + 1, *a[1:]), MIDDLE + 1)
    assert_tampered(rf"^Ledger TAMPERED: event {MIDDLE} \(validation\.allowed\): prev_hash")


@pytest.mark.parametrize(
    ("statement", "pattern"),
    [
        (
            "DELETE FROM ledger_events WHERE seq > 11",
            r"head records event 13 but the last event is 11",
        ),
        (
            "UPDATE ledger_head SET hash = '" + "a" * 64 + "' WHERE id = 1",
            r"event 13 is not the event the ledger head records",
        ),
        (
            "UPDATE ledger_head SET seq = 12 WHERE id = 1",
            r"head records event 12 but the last event is 13",
        ),
    ],
    ids=["tail-deleted", "head-hash-altered", "head-seq-altered"],
)
def test_the_signed_head_reveals_any_change_to_the_newest_events(
    scenario: Scenario, statement: str, pattern: str
) -> None:
    assert_intact(13)
    sql(statement)
    assert_tampered(pattern)
    refused_at_open()


def test_tail_truncation_with_the_head_fixed_to_match(scenario: Scenario) -> None:
    """Delete the newest events (the revocation's denial and the allowed decision after it) and
    point the head at the new last event: the head's signature no longer matches."""
    assert_intact(13)
    keep = stored_rows()[10]  # event 11: the revocation
    sql("DELETE FROM ledger_events WHERE seq > 11")
    set_head_row({"seq": 11, "hash": keep[9]})
    assert_tampered(r"signature does not verify")


def test_an_old_signed_head_replayed_over_a_truncated_ledger_is_a_rollback(
    scenario: Scenario,
) -> None:
    """The best a store writer can do: keep a copy of the head row as it was after event 11 (a
    validly signed head), later delete what followed and put the old head back. The store is
    consistent again; the head file kept outside it is not fooled."""
    old_head = head_row()
    issue()  # event 14, after the saved head
    cli("mandate", "revoke", stored_rows()[-1][5], "--yes")  # event 15
    sql(f"DELETE FROM ledger_events WHERE seq > {old_head['seq']}")
    sql(f"DELETE FROM ledger_state_events WHERE seq > {old_head['seq']}")
    sql(f"DELETE FROM ledger_nodes WHERE (idx + 1) * (1 << level) > {old_head['seq']}")
    set_head_row(old_head)
    message = assert_tampered(
        r"head file \(keys/ledger-head\.json\): the ledger ends at event 13: events 14-15 "
        r"removed \(the store was rolled back\)"
    )
    assert "TAMPERED" in message
    refused = run_cli("mandate", "list")
    assert refused.code == ExitCode.INTEGRITY, refused
    assert "The ledger was rolled back" in refused.stderr and "accept-rollback" in refused.stderr


# ---- heads --------------------------------------------------------------------------------------


def test_deleting_the_head_row_is_detected(scenario: Scenario) -> None:
    assert_intact(13)
    sql("DELETE FROM ledger_head")
    assert_tampered(r"the ledger head row is missing \(it was deleted\)")
    refused_at_open()


def test_deleting_the_newest_kept_head_is_detected(scenario: Scenario) -> None:
    cli("ledger", "checkpoint")  # keeps the head at event 13; event 14 records that
    assert_intact(14)
    sql("DELETE FROM ledger_checkpoints WHERE size = 13")
    assert_tampered(r"ledger_checkpoints row 13 is missing \(the events created it\)")


def test_a_forged_kept_head_is_detected(scenario: Scenario) -> None:
    cli("ledger", "checkpoint")
    pair = generate_key_pair()
    sql(
        "UPDATE ledger_checkpoints SET kid = :kid WHERE size = 13", kid=pair.kid
    )  # signed by a key nobody pinned
    assert_tampered(
        r"kept head at event 13 .* signed by key k_[0-9a-f]+, which this workspace did not pin"
    )


@pytest.mark.parametrize("every", [10, 1_000_000])
def test_changing_checkpoint_every_never_breaks_verify_nor_opens_a_window(
    scenario: Scenario, every: int
) -> None:
    """Heads are signed in every write: how often one is also kept does not matter to verify,
    lowered or raised, and the newest event is protected either way."""
    cli("config", "set", "ledger.checkpoint_every", str(every))
    for _ in range(3):
        issue()
    cli("config", "set", "ledger.checkpoint_every", "1000")
    issue()
    report = run_cli("ledger", "verify", "--json").json()
    assert report["ok"] is True, report
    sql(f"DELETE FROM ledger_events WHERE seq = {report['head_seq']}")
    assert_tampered(rf"head records event {report['head_seq']} but the last event is")


# ---- state: every row a decision reads is bound to its events -----------------------------------


def _first_key(principal_id: str) -> str:
    with Caracal.open(check_ledger=False) as app, app.store.read() as conn:
        return str(
            conn.execute(
                text("SELECT kid FROM principal_keys WHERE principal_id = :p ORDER BY created_at"),
                {"p": principal_id},
            )
            .scalars()
            .first()
        )


STATE_ATTACKS: dict[str, tuple[str, str]] = {
    # name: (statement, what verify names). :first :second :alice :orch are the scenario's ids.
    "un-revoke": (
        "UPDATE mandates SET revoked_at = NULL WHERE id = :first",
        r"mandates row {first}, column revoked: the events say True, the table holds False",
    ),
    "extend-expiry": (
        "UPDATE mandates SET expires_at = expires_at + 86400 WHERE id = :second",
        r"mandates row {second}, column expires_at",
    ),
    "widen-actions": (
        f'UPDATE mandates SET actions = \'["{READ}", "{WRITE}"]\' WHERE id = :second',
        r"mandates row {second}, column actions",
    ),
    "swap-token": (
        "UPDATE mandates SET token = (SELECT token FROM mandates WHERE id = :first) WHERE id = :second",
        r"mandates row {second}, column token_sha256",
    ),
    "suspend": (
        "UPDATE principals SET status = 'suspended' WHERE id = :orch",
        r"principals row {orch}, column status: the events say 'active', the table holds 'suspended'",
    ),
    "change-kind": (
        "UPDATE principals SET kind = 'human' WHERE id = :orch",
        r"principals row {orch}, column kind",
    ),
    "revive-key": (
        "UPDATE principal_keys SET status = 'active' WHERE kid = :old_key",
        r"principal_keys row {old_key}, column status: the events say 'revoked'",
    ),
    "swap-public-key": (
        "UPDATE principal_keys SET public_pem = :pem WHERE kid = :old_key",
        r"principal_keys row {old_key}, column public_key_sha256",
    ),
    "widen-policy": (
        "UPDATE policies SET max_validity = 86400 WHERE principal_id = :orch",
        r"policies row pol_[0-9a-f]+, column max_validity",
    ),
    "reactivate-policy": (
        "UPDATE policies SET status = 'active' WHERE status = 'inactive'",
        r"policies row pol_[0-9a-f]+, column status: the events say 'inactive'",
    ),
    "redirect-provider": (
        "UPDATE providers SET base_url = 'https://evil.example' WHERE name = 'github'",
        r"providers row github, column definition_sha256",
    ),
    "add-catalog-action": (
        "INSERT INTO provider_actions (provider, resource_id, action_id, method, path_prefix, position) "
        "VALUES ('github', 'repos', 'admin', 'ANY', '/', 9)",
        r"providers row github, column definition_sha256",
    ),
    "inject-principal": (
        "INSERT INTO principals (id, name, kind, status, created_at, updated_at) "
        "VALUES ('pr_ffffffffffffffff', 'mallory', 'human', 'active', 0, 0)",
        r"principals row pr_ffffffffffffffff was not made by any event \(it was injected\)",
    ),
    "inject-key": (
        "INSERT INTO principal_keys (kid, principal_id, public_pem, status, created_at) "
        "VALUES ('k_ffffffffffffffff', :alice, :pem, 'active', 0)",
        r"principal_keys row k_ffffffffffffffff was not made by any event \(it was injected\)",
    ),
    "unindex-revocation": (
        "DELETE FROM ledger_state_events WHERE type = 'mandate.revoked'",
        r"ledger_state_events row \d+ is missing \(the events created it\)",
    ),
    "delete-mandate": (
        "DELETE FROM mandates WHERE id = :first",
        r"mandates row {first} is missing \(the events created it\)",
    ),
}


@pytest.fixture
def state_world(scenario: Scenario) -> dict[str, str]:
    """The scenario, plus a principal whose old keys were revoked (event 14, 15) and a
    superseded policy, so every kind of state has a row to attack."""
    cli("principal", "rotate-key", "orch", "--revoke-old", "--yes")
    cli(
        *("policy", "create", "--principal", "orch", "--max-validity", "30m", "--replace"),
        *("--resource", "provider:github:resource:*", "--action", "provider:github:action:*"),
    )
    return {
        "first": scenario.first,
        "second": scenario.second,
        "alice": scenario.alice,
        "orch": scenario.orch,
        "old_key": _first_key(scenario.orch),
        "pem": generate_key_pair().public_pem,
    }


@pytest.mark.parametrize("attack", list(STATE_ATTACKS))
def test_every_decision_relevant_state_change_outside_caracal_is_named(
    state_world: dict[str, str], attack: str
) -> None:
    statement, pattern = STATE_ATTACKS[attack]
    assert run_cli("ledger", "verify").code == 0
    params = {k: v for k, v in state_world.items() if f":{k}" in statement}
    sql(statement, **params)
    assert_tampered(pattern.format(**state_world))


def test_a_cleared_revocation_never_validates_again(state_world: dict[str, str]) -> None:
    """The store row says "not revoked"; its revocation event says otherwise, and wins."""
    sql("UPDATE mandates SET revoked_at = NULL WHERE id = :m", m=state_world["first"])
    denied = validate(state_world["first"], expect=ExitCode.DENIED).stdout
    assert "MANDATE_REVOKED" in denied or "revoked" in denied.lower(), denied


def test_a_revived_key_stays_revoked_for_validation(state_world: dict[str, str]) -> None:
    """orch's first key was revoked by the rotation: making it active again in the table does
    not make it verify anything."""
    from caracal.services.authority_state import StoreAuthorityState

    sql("UPDATE principal_keys SET status = 'active' WHERE kid = :k", k=state_world["old_key"])
    with Caracal.open() as app, app.store.read() as conn:
        state = StoreAuthorityState(conn, app.workspace_id, app.signing)
        key = state.key(state_world["old_key"])
    assert key is not None and key.status == "revoked"


def test_an_injected_key_and_mandate_are_unknown(state_world: dict[str, str], home: Path) -> None:
    """A key inserted for alice and a mandate row signed with it: validation calls it unknown,
    whatever the rows say."""
    from caracal.core import jws
    from caracal.core.keys import load_private
    from caracal.core.mandates import MandateClaims

    pair = generate_key_pair()
    sql(
        "INSERT INTO principal_keys (kid, principal_id, public_pem, status, created_at) "
        "VALUES (:kid, :p, :pem, 'active', 0)",
        kid=pair.kid,
        p=state_world["alice"],
        pem=pair.public_pem,
    )
    with Caracal.open(check_ledger=False) as app:
        ws = app.workspace_id
    claims = MandateClaims(
        "mnd_0fffffffffffffffffff", ws, state_world["alice"], state_world["orch"],
        0, 0, 4_000_000_000, (REPOS,), (READ, WRITE), 3, None, None, ((0, 0), (0, 1)),
    )  # fmt: skip
    token = jws.encode(claims.to_claims(), pair.kid, load_private(pair.private_der))
    sql(
        "INSERT INTO mandates (id, issuer_id, subject_id, parent_id, root_id, kid, policy_id, "
        "issued_at, not_before, expires_at, resources, actions, depth, intent_hash, token) "
        "VALUES (:id, :iss, :sub, NULL, :id, :kid, NULL, 0, 0, 4000000000, :res, :act, 3, NULL, :tok)",
        id=claims.id,
        iss=claims.issuer_id,
        sub=claims.subject_id,
        kid=pair.kid,
        res=json.dumps([REPOS]),
        act=json.dumps([READ, WRITE]),
        tok=token,
    )
    result = run_cli(
        "mandate", "validate", "--token", token, "--action", WRITE, "--resource", REPOS, "--json"
    )
    assert result.code == ExitCode.DENIED, result
    assert result.json()["reason_code"] == "KEY_UNKNOWN", result
    assert_tampered(r"was not made by any event \(it was injected\)")


def test_a_tool_mapping_changed_outside_caracal_is_named(backend: str, home: Path) -> None:
    cli("workspace", "create", "demo")
    cli(
        *(
            "provider",
            "add",
            "docs",
            "--service-type",
            "mcp",
            "--base-url",
            "http://127.0.0.1:9/mcp",
        ),
        *("--resource", "docs", "--action", "docs:read", "--action", "docs:delete"),
    )
    cli(
        *("tool", "register", "read_doc", "--server", "docs"),
        *("--resource", "provider:docs:resource:docs", "--action", "provider:docs:action:read"),
    )
    assert run_cli("ledger", "verify").code == 0
    sql("UPDATE tools SET action = 'provider:docs:action:delete' WHERE name = 'read_doc'")
    assert_tampered(
        r"tools row read_doc, column action: the events say 'provider:docs:action:read'"
    )


def test_a_payload_that_was_forged_is_named_before_any_state(scenario: Scenario) -> None:
    """Canonical JSON is what was hashed: a payload rewritten in another spelling is altered."""
    row = dict(zip(COLUMNS, stored_rows()[MIDDLE - 1], strict=True))
    respelled = json.dumps(json.loads(row["payload"]), indent=1)
    assert respelled != row["payload"] and canonical_json(json.loads(respelled)) == row["payload"]
    sql("UPDATE ledger_events SET payload = :p WHERE seq = :s", p=respelled, s=MIDDLE)
    assert_tampered(rf"^Ledger TAMPERED: event {MIDDLE} \(mandate\.issued\): hash does not match")
