"""The ledger scenario the ledger tests share: thirteen events recorded through the CLI, and
the tools of someone with direct database access (raw SQL, recomputed hashes)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from caracal.cli.exit_codes import ExitCode
from caracal.core.canonical import canonical_json
from caracal.core.ledger import Row, event_hash
from caracal.services.facade import Caracal
from caracal.store import ledger_rows
from tests.support.cli import Result, run_cli

# ---- scopes and the scenario ------------------------------------------------------------------

READ = "provider:github:action:read"
WRITE = "provider:github:action:write"
REPOS = "provider:github:resource:repos"
COLUMNS = ledger_rows.COLUMNS  # seq, ts, type, actor, principal_id, mandate_id, reason_code, ...

# What the scenario below records, in order.
SCENARIO_TYPES = [
    "workspace.created",  # 1
    "provider.added",  # 2
    "principal.registered",  # 3 alice
    "principal.registered",  # 4 orch
    "policy.created",  # 5
    "mandate.issued",  # 6 first mandate
    "validation.allowed",  # 7 read with the first mandate
    "validation.denied",  # 8 write with the first mandate (not granted)
    "mandate.issue_refused",  # 9 ttl over the policy's maximum validity
    "mandate.issued",  # 10 second mandate
    "mandate.revoked",  # 11 first mandate
    "validation.denied",  # 12 the revoked first mandate
    "validation.allowed",  # 13 the second mandate
]
MIDDLE = 6  # the event the tamper tests alter: mandate.issued, every optional column but one set


@dataclass(frozen=True)
class Scenario:
    alice: str
    orch: str
    first: str  # mandate id, revoked at event 11
    first_token: str
    second: str


def cli(*args: str, expect: int = 0) -> Result:
    result = run_cli(*args)
    assert result.code == expect, result
    return result


def issue(ttl: str = "30m", expect: int = 0) -> Result:
    return cli(
        *("mandate", "issue", "--issuer", "alice", "--subject", "orch"),
        *("--resource", REPOS, "--action", READ, "--ttl", ttl, "--json"),
        expect=expect,
    )


def validate(mandate_id: str, action: str = READ, expect: int = 0) -> Result:
    return cli(
        "mandate", "validate", mandate_id, "--action", action, "--resource", REPOS, expect=expect
    )


def prepare_workspace() -> tuple[str, str]:
    """Workspace, provider, two principals and orch's policy: events 1-5. Returns (alice, orch)."""
    cli("workspace", "create", "demo")
    cli(
        *("provider", "add", "github", "--base-url", "https://api.github.com"),
        *("--resource", "repos", "--action", "repos:read", "--action", "repos:write"),
    )
    alice = cli("principal", "register", "--kind", "human", "--name", "alice").stdout.strip()
    orch = cli("principal", "register", "--kind", "orchestrator", "--name", "orch").stdout.strip()
    cli(
        *("policy", "create", "--principal", "orch", "--max-validity", "1h"),
        *("--resource", "provider:github:resource:*", "--action", "provider:github:action:*"),
        *("--delegation-depth", "2"),
    )
    return alice, orch


@pytest.fixture
def scenario(backend: str, home: Path) -> Scenario:
    """The thirteen events of SCENARIO_TYPES, on the backend under test."""
    alice, orch = prepare_workspace()
    first = issue().json()
    validate(first["id"])
    validate(first["id"], WRITE, expect=ExitCode.DENIED)
    issue("2h", expect=ExitCode.DENIED)
    second = issue().json()
    cli("mandate", "revoke", first["id"], "--yes")
    validate(first["id"], expect=ExitCode.DENIED)
    validate(second["id"])
    return Scenario(alice, orch, first["id"], first["token"], second["id"])


# ---- reading and tampering with the store directly ---------------------------------------------


def listed(*filters: str) -> list[dict[str, Any]]:
    result = cli("ledger", "list", "--json", "--limit", "1000000", *filters)
    return result.json()  # type: ignore[no-any-return]


def seqs(*filters: str) -> list[int]:
    return [e["seq"] for e in listed(*filters)]


def verify_report() -> dict[str, Any]:
    result = run_cli("ledger", "verify", "--json")
    assert result.code in (0, ExitCode.INTEGRITY), result
    return result.json()  # type: ignore[no-any-return]


def assert_intact(events: int) -> None:
    report = verify_report()
    assert report["ok"] is True and report["problem"] is None, report
    assert report["events"] == report["head_seq"] == events, report


def assert_tampered(pattern: str) -> str:
    """`ledger verify` exits 7 and names the problem; returns the message."""
    result = run_cli("ledger", "verify")
    assert result.code == ExitCode.INTEGRITY, result
    message = result.stdout.strip()
    assert message.startswith("Ledger TAMPERED: "), result
    assert re.search(pattern, message), message
    return message


def sql(statement: str, **params: Any) -> None:
    """Run one statement in its own transaction, as an attacker with database access would."""
    with Caracal.open(check_ledger=False) as app:  # the attacker does not check the ledger
        app.store.write(lambda conn: conn.execute(text(statement), params))


def stored_rows() -> list[Row]:
    query = f"SELECT {', '.join(COLUMNS)} FROM ledger_events ORDER BY seq"
    with Caracal.open(check_ledger=False) as app, app.store.read() as conn:
        return [tuple(r) for r in conn.execute(text(query))]


def count_rows(table: str) -> int:
    with Caracal.open(check_ledger=False) as app, app.store.read() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def replace_row(row: Row, seq: int | None = None) -> None:
    """Overwrite every column of event `seq` (default: the row's own) with `row`'s values."""
    values = dict(zip(COLUMNS, row, strict=True))
    values["target"] = row[0] if seq is None else seq
    assignments = ", ".join(f'"{c}" = :{c}' for c in COLUMNS)
    sql(f"UPDATE ledger_events SET {assignments} WHERE seq = :target", **values)


def rehash(rows: list[Row]) -> list[Row]:
    """Recompute prev_hash and hash of `rows` (consecutive, in order) after the one before."""
    out: list[Row] = []
    prev = rows[0][8]
    for seq, ts, type_, actor, principal, mandate, reason, payload, _prev, _hash in rows:
        digest = event_hash(seq, ts, type_, actor, principal, mandate, reason, payload, prev)
        out.append((seq, ts, type_, actor, principal, mandate, reason, payload, prev, digest))
        prev = digest
    return out


def set_head(seq: int, digest: str) -> None:
    sql("UPDATE ledger_head SET seq = :seq, hash = :hash WHERE id = 1", seq=seq, hash=digest)


def longer_expiry(payload: str) -> str:
    data = json.loads(payload)
    data["expires_at"] += 30 * 86400
    return canonical_json(data)
