"""Upgrading a ledger written before store schema 4 (hash chain, checkpoints) to the verifiable
ledger: its chain is checked, re-hashed so that each event's hash is its Merkle leaf hash, the
tree is built, and the first open signs the head. A ledger already broken is refused, never
laundered into one that verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from caracal.core.errors import IntegrityError
from caracal.core.ledger import GENESIS_HASH, event_hash, legacy_event_hash
from caracal.core.merkle import leaf_hash, root_of
from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceManager
from caracal.store.engine import Store, StoreLocation, open_store, resolve_location
from caracal.store.migrations import LATEST, current_version, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store at schema 3 with a ten-event ledger chained the old way."""
    if request.param == "sqlite":
        location = StoreLocation(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        location = resolve_location(request.getfixturevalue("pg_url"), "caracal_t_up", tmp_path)
    store = open_store(location, create=True, migrate=False)
    upgrade(store, target=3)
    prev = GENESIS_HASH
    rows = []
    for seq in range(1, 11):
        fields = (seq, 1_000 + seq, "test.old", "alice", None, None, None, json.dumps({"n": seq}))
        digest = legacy_event_hash(*fields, prev)
        rows.append({**dict(zip(("seq", "ts", "type", "actor", "pid", "mid", "rc", "payload"),
                                fields, strict=True)), "prev": prev, "hash": digest})  # fmt: skip
        prev = digest

    def fill(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            text(
                "INSERT INTO ledger_events (seq, ts, type, actor, principal_id, mandate_id, "
                "reason_code, payload, prev_hash, hash) VALUES (:seq, :ts, :type, :actor, :pid, "
                ":mid, :rc, :payload, :prev, :hash)"
            ),
            rows,
        )
        conn.execute(  # type: ignore[attr-defined]
            text("UPDATE ledger_head SET seq = 10, hash = :h WHERE id = 1"), {"h": prev}
        )

    store.write(fill)
    try:
        yield store
    finally:
        store.dispose()


def _events(store: Store) -> list[tuple[object, ...]]:
    with store.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT seq, ts, type, actor, principal_id, mandate_id, reason_code, payload, "
                    "prev_hash, hash FROM ledger_events ORDER BY seq"
                )
            )
        ]


def test_an_old_ledger_is_re_chained_and_its_tree_built(old_store: Store) -> None:
    upgrade(old_store)
    events = _events(old_store)
    prev = GENESIS_HASH
    for row in events:
        assert row[8] == prev and row[9] == event_hash(*row[:8], prev), row
        prev = str(row[9])
    with old_store.read() as conn:
        assert current_version(conn) == LATEST
        head = conn.execute(text("SELECT seq, hash, root, signature FROM ledger_head")).one()
    assert (head.seq, head.hash) == (10, prev)
    assert head.root == root_of(leaf_hash(str(r[9])) for r in events).hex()
    assert head.signature is None  # signed by the first open, which has the key


def test_a_broken_old_ledger_is_refused_not_laundered(old_store: Store) -> None:
    old_store.write(
        lambda conn: conn.execute(
            text("UPDATE ledger_events SET payload = :p WHERE seq = 6"), {"p": '{"n":600}'}
        )
    )
    with pytest.raises(IntegrityError, match="broken at event 6"):
        upgrade(old_store)
    with old_store.read() as conn:
        assert current_version(conn) == 3  # nothing of the upgrade was kept
    assert _events(old_store)[5][7] == '{"n":600}'


def test_the_first_open_after_the_upgrade_signs_the_head(home: Path) -> None:
    """What the upgrade leaves: an unsigned head and no head file yet. Opening signs it; an
    unsigned head once a head file exists is tampering, not an upgrade."""
    WorkspaceManager().create("demo")
    keys = home / "workspaces" / "demo" / "keys"
    with Caracal.open("demo", check_ledger=False) as app:
        app.store.write(
            lambda conn: conn.execute(
                text("UPDATE ledger_head SET ts = NULL, kid = NULL, signature = NULL")
            )
        )
    (keys / "ledger-head.json").unlink()
    with Caracal.open("demo") as app:
        head = app.ledger.signed_head()
        assert head.size == 1 and app.ledger.verify().ok
    assert (keys / "ledger-head.json").exists()
    with Caracal.open("demo", check_ledger=False) as app:
        app.store.write(lambda conn: conn.execute(text("UPDATE ledger_head SET signature = NULL")))
    with pytest.raises(IntegrityError, match="not signed, but this workspace has signed heads"):
        Caracal.open("demo").store  # noqa: B018 - opening is the check
