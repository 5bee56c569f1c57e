"""Issuance on PostgreSQL against an issuer being suspended and its key being revoked by
another process: a mandate reported issued was issued before the change committed, never
after (the ledger never shows a suspended issuer issuing, or a revoked key signing)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from caracal.core.errors import CaracalError
from caracal.services.facade import Caracal
from caracal.services.ledger_reads import LedgerFilter
from tests.conftest import _require_postgres
from tests.runtime.test_authorize import READ, REPOS, make_workspace
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.timeout(300)

WORKERS = 3
SECONDS = 8.0


def _issue_until(deadline: float, queue: Any) -> None:
    issued: list[str] = []
    errors: set[str] = set()
    refused = 0
    try:
        with Caracal.open("demo") as app:
            while time.time() < deadline:
                try:
                    mandate = app.mandates.issue("alice", "orch", [REPOS], [READ], "10m")
                except CaracalError as exc:
                    refused += 1
                    errors.add(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                issued.append(mandate.claims.id)
        queue.put(("ok", issued, refused, sorted(errors)))
    except BaseException as exc:  # never leave the parent waiting
        queue.put(("crash", repr(exc), refused, sorted(errors)))


def _change_the_issuer(deadline: float) -> tuple[int, int]:
    suspensions = rotations = 0
    with Caracal.open("demo") as app:
        while time.time() < deadline:
            app.principals.suspend("alice")
            suspensions += 1
            time.sleep(0.15)
            app.principals.activate("alice")
            time.sleep(0.15)
            app.principals.rotate_key("alice", revoke_old=True)
            rotations += 1
            time.sleep(0.15)
    return suspensions, rotations


def test_issuance_is_serialised_with_suspension_and_key_revocation(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_postgres()
    with scratch_database() as url:
        monkeypatch.setenv("CARACAL_STORE_URL", url)
        make_workspace("demo")
        with Caracal.open("demo") as app:
            before = {e["mandate_id"] for e in app.ledger.events(LedgerFilter(), limit=None)}
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        deadline = time.time() + 3 + SECONDS  # the children start in about 3 s
        children = [
            ctx.Process(target=_issue_until, args=(deadline, queue)) for _ in range(WORKERS)
        ]
        for child in children:
            child.start()
        time.sleep(3)
        suspensions, rotations = _change_the_issuer(deadline)
        results = [queue.get(timeout=120) for _ in children]
        for child in children:
            child.join(60)
        assert all(r[0] == "ok" for r in results), results
        reported = {m for r in results for m in r[1]}
        with Caracal.open("demo") as app:
            alice = app.principals.get("alice").id
            events = app.ledger.events(LedgerFilter(), limit=None, newest_first=False)

    suspended = False
    revoked_kids: set[str] = set()
    issued_while_suspended, signed_with_revoked = [], []
    recorded: set[str] = set()
    for event in events:
        kind, payload = event["type"], event["payload"]
        if kind == "principal.suspended" and event["principal_id"] == alice:
            suspended = True
        elif kind == "principal.activated" and event["principal_id"] == alice:
            suspended = False
        elif kind == "principal.key_rotated" and event["principal_id"] == alice:
            if payload["old_keys_revoked"]:
                revoked_kids |= set(payload["old_kids"])
        elif kind == "mandate.issued" and event["mandate_id"] not in before:
            recorded.add(event["mandate_id"])
            if suspended:
                issued_while_suspended.append(event["seq"])
            if payload["kid"] in revoked_kids:
                signed_with_revoked.append(event["seq"])
    print(
        f"\nRACE {len(reported)} issued, {sum(r[2] for r in results)} refused, "
        f"{suspensions} suspensions, {rotations} key revocations"
    )
    assert suspensions >= 5 and rotations >= 5
    assert len(reported) > 20 and sum(r[2] for r in results) > 0
    assert recorded == reported, [r[3] for r in results]
    assert issued_while_suspended == []
    assert signed_with_revoked == []
