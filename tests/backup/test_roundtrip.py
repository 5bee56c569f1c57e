"""A restored workspace is the backed-up workspace: every table row for row, the same ledger
head, the same decisions, and (with a lock key) the same secrets, across backends."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.backup.conftest import (
    LOCK_ENV,
    READ,
    REDIS_URL,
    REPOS,
    WRITE,
    Archive,
    Snapshot,
    Source,
    assert_clear_error,
    cli,
    decisions,
    ok,
    pg_schemas,
    snapshot,
    validate,
)

RESTORED = "restored"

COMBOS = [
    pytest.param(src, dst, locked, id=f"{src}-to-{dst}-{'locked' if locked else 'unlocked'}")
    for src, dst in [
        ("sqlite", "sqlite"),
        ("sqlite", "postgresql"),
        ("postgresql", "sqlite"),
        ("postgresql", "postgresql"),
    ]
    for locked in (False, True)
]


def _restore(
    archive: Archive,
    name: str,
    *,
    dst: str,
    source: Source,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[dict[str, Any], str | None]:
    """Restore `archive` as `name` into backend `dst`; returns (its JSON result, pg url).
    Unlocked archives go to PostgreSQL through --store-url, locked ones through
    CARACAL_STORE_URL, so both ways of choosing the target are exercised."""
    url: str | None = None
    if dst == "postgresql":
        # PostgreSQL to PostgreSQL lands in the source's own database, next to its schema.
        url = (
            source.store_url
            if source.backend == "postgresql"
            else request.getfixturevalue("pg_url")
        )
        assert url is not None
    args = ["backup", "restore", str(archive.path), "--as", name, "--json"]
    if archive.locked:
        args += ["--lock-key-env", LOCK_ENV]
        if url:
            monkeypatch.setenv("CARACAL_STORE_URL", url)
    elif url:
        args += ["--store-url", url]
    return ok(cli(*args)).json(), url


def _without(rows: list[dict[str, Any]], *columns: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


def assert_same_store(archive: Archive, restored: Snapshot, name: str) -> None:
    """Row-for-row equality, excluding only what legitimately differs."""
    src, dst = archive.snapshot.tables, restored.tables
    assert set(src) == set(dst)
    head_seq, head_hash = archive.head_seq, archive.head_hash
    for table in sorted(src):
        left, right = src[table], dst[table]
        if table == "caracal_schema":
            left, right = _without(left, "applied_at"), _without(right, "applied_at")
        elif table == "meta":
            assert {"key": "workspace_name", "value": name} in right
            left = [r for r in left if r["key"] != "workspace_name"]
            right = [r for r in right if r["key"] != "workspace_name"]
        elif table == "secrets":
            continue  # compared decrypted, below
        elif table == "ledger_events":
            # The source appended `backup.created` after the archived head; the restore
            # appended exactly one `backup.restored` after it.
            left = [e for e in left if e["seq"] <= head_seq]
            marker = right[-1]
            assert marker["type"] == "backup.restored" and marker["seq"] == head_seq + 1
            assert marker["prev_hash"] == head_hash  # the archived head, unchanged
            right = right[:-1]
        elif table == "ledger_head":
            [row] = right
            assert (row["seq"], row["hash"]) == (head_seq + 1, dst["ledger_events"][-1]["hash"])
            assert row["signature"] and row["root"]  # the restore's event is under a signed head
            continue
        elif table == "ledger_nodes":
            # Not archived: the restore rebuilds the tree's kept nodes from the events.
            left = [n for n in left if (n["idx"] + 1) << n["level"] <= head_seq]
            right = [n for n in right if (n["idx"] + 1) << n["level"] <= head_seq]
        elif table == "ledger_checkpoints":
            left = [c for c in left if c["size"] <= head_seq]
        elif table == "ledger_keys" and not archive.locked:
            # Without secrets the ledger key's private half stayed behind: the restore signs
            # its own event with a new key (pinned in the new workspace), kept beside the old.
            known = {k["kid"] for k in left}
            assert len([k for k in right if k["kid"] not in known]) == 1, right
            right = [k for k in right if k["kid"] in known]
        assert right == left, f"table {table} differs after the round trip"
    assert dst["ledger_events"][head_seq - 1]["hash"] == head_hash

    if archive.locked:
        assert {ref: v[:2] for ref, v in restored.secrets.items()} == {
            ref: v[:2] for ref, v in archive.snapshot.secrets.items()
        }
    else:
        # No secret of the source's; only the new ledger key the restore signed with.
        assert [r["kind"] for r in dst["secrets"]] == ["ledger-key"], dst["secrets"]


@pytest.mark.parametrize(("src", "dst", "locked"), COMBOS)
def test_round_trip_restores_an_equal_workspace(
    src: str,
    dst: str,
    locked: bool,
    sources: Callable[[str], Source],
    home: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = sources(src)
    archive = source.archives[locked]
    # Distinct per archive: PostgreSQL to PostgreSQL restores share the source's database.
    name = f"restored-{'locked' if locked else 'plain'}"
    schema = "caracal_" + name.replace("-", "_")
    result, url = _restore(
        archive, name, dst=dst, source=source, request=request, monkeypatch=monkeypatch
    )
    assert result["workspace"] == name and result["secrets_included"] is locked
    assert result["store"] == (f"PostgreSQL ({schema})" if dst == "postgresql" else "SQLite")
    assert result["tables"] == archive.created["tables"]
    if url is not None:
        assert schema in pg_schemas(url)
        if source.backend == "postgresql":
            assert "caracal_src" in pg_schemas(url)  # the source's schema is untouched

    # 1. Every table, row for row (before anything else touches the restored store).
    restored = snapshot(name)
    assert_same_store(archive, restored, name)

    # 2. The ledger verifies, and every mandate decides exactly as it did in the source.
    ok(cli("ledger", "verify", workspace=name))
    assert decisions(source.mandates, workspace=name) == source.decisions

    # 3. Secrets: the provider credential and the encrypted config value.
    provider = ok(cli("provider", "show", "github", "--json", workspace=name)).json()
    redis = ok(
        cli("config", "get", "runtime.redis_url", "--reveal", "--json", workspace=name)
    ).json()
    assert (
        ok(cli("config", "get", "ledger.checkpoint_every", workspace=name)).stdout.strip() == "10"
    )
    moved = [n for n in result["notices"] if "embedded SQLite" in n]
    if src == "postgresql" and dst == "sqlite":
        assert len(moved) == 1 and "PostgreSQL (caracal_src)" in moved[0], result["notices"]
    else:
        assert moved == [], result["notices"]
    if locked:
        assert provider["credential"] == "set" and redis == REDIS_URL
        assert [n for n in result["notices"] if n not in moved] == []
    else:
        assert provider["credential"] == "missing" and redis is None
        notices = " ".join(result["notices"])
        assert "runtime.redis_url" in notices and "rotate-key" in notices

    # 4. Principals can issue: at once with the lock key, after a key rotation without it.
    issue = (
        "mandate", "issue", "--issuer", "alice", "--subject", "w1", "--ttl", "5m",
        "--resource", REPOS, "--action", READ, "--json",
    )  # fmt: skip
    delegate = (
        "mandate", "delegate", source.mandates["root"], "--subject", "w2", "--ttl", "5m",
        "--resource", REPOS, "--action", WRITE, "--json",
    )  # fmt: skip
    if not locked:
        assert_clear_error(cli(*issue, workspace=name), ExitCode.CONFLICT, "rotate-key alice")
        assert_clear_error(cli(*delegate, workspace=name), ExitCode.CONFLICT, "rotate-key orch")
        ok(cli("principal", "rotate-key", "alice", workspace=name))
        ok(cli("principal", "rotate-key", "orch", workspace=name))
    fresh = ok(cli(*issue, workspace=name)).json()["id"]
    delegated = ok(cli(*delegate, workspace=name)).json()["id"]
    assert validate(fresh, READ, REPOS, None, workspace=name) == (True, "ALLOWED")
    assert validate(delegated, WRITE, REPOS, "w2", workspace=name) == (True, "ALLOWED")

    # 5. The restored ledger kept verifying through all of that, new signed checkpoints
    #    included: without secrets the old ledger key's private half is gone, so the
    #    restored workspace signs with a fresh (pinned) key; with them it keeps the old one.
    archived = [
        c for c in archive.snapshot.tables["ledger_checkpoints"] if c["size"] <= archive.head_seq
    ]
    report = ok(cli("ledger", "verify", "--json", workspace=name)).json()
    assert report["ok"] is True and report["checkpoints"] > len(archived)
    ledger_keys = snapshot(name).tables["ledger_keys"]
    assert len(ledger_keys) == (1 if locked else 2)
    pins = sorted(p.name for p in (home / "workspaces" / name / "keys").glob("ledger-*.pub.pem"))
    assert pins == sorted(f"ledger-{k['kid']}.pub.pem" for k in ledger_keys)


def test_locked_restore_keeps_when_each_secret_was_created(
    sqlite_source: Source, home: Path
) -> None:
    archive = sqlite_source.locked
    ok(cli("backup", "restore", str(archive.path), "--as", RESTORED, "--lock-key-env", LOCK_ENV))
    restored = snapshot(RESTORED)
    assert {ref: v[2] for ref, v in restored.secrets.items()} == {
        ref: v[2] for ref, v in archive.snapshot.secrets.items()
    }


def test_restored_ledger_records_where_it_came_from(sqlite_source: Source, home: Path) -> None:
    archive = sqlite_source.plain
    ok(cli("backup", "restore", str(archive.path), "--as", RESTORED))
    events = ok(cli("ledger", "list", "--json", workspace=RESTORED)).json()
    restored = [e for e in events if e["type"] == "backup.restored"]
    assert len(restored) == 1
    payload = restored[0]["payload"]
    assert payload["file"] == archive.path.name and payload["from_workspace"] == "src"
    assert payload["secrets_included"] is False
    source_created = json.loads(archive.snapshot.events()[-1]["payload"])
    assert source_created["file"] == archive.path.name and source_created["locked"] is False
