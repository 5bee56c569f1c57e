"""Archives are signed by the workspace's ledger key, and trusted only by a key that is known.

Someone who can write an archive (not the source workspace's vault) edits its members and
recomputes the manifest's hashes, strips or replaces the signature, or re-signs everything with
a key of their own: `backup verify` and `backup restore` refuse it (exit 7), and nothing is left
behind. Even an archive re-signed with the real key (a stolen key) is refused when its tables
do not match its ledger."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.core.keys import generate_key_pair, load_private
from caracal.core.tree_head import key_fingerprint, sign_head
from caracal.services.backup.trust import signature_document
from tests.backup.conftest import (
    LOCK_ENV,
    LOCK_KEY,
    Member,
    Source,
    assert_nothing_left,
    cli,
    manifest_of,
    ok,
    read_members,
    regular,
    replace_data,
    set_manifest,
    table_dump,
    table_rows,
    write_members,
)

VICTIM = "victim"


def refused(
    archive: Path, home: Path, *needles: str, locked: bool = False, trusting: bool = True
) -> str:
    extra = ("--lock-key-env", LOCK_ENV) if locked else ()
    verify = cli("backup", "verify", str(archive), "--json", *extra, trusting=trusting)
    assert verify.code == ExitCode.INTEGRITY, verify
    problem = verify.json()["problem"]
    for needle in needles:
        assert needle.lower() in problem.lower(), problem
    restore = cli("backup", "restore", str(archive), "--as", VICTIM, *extra, trusting=trusting)
    assert restore.code == ExitCode.INTEGRITY, restore
    assert restore.stderr.startswith("error: ") and restore.stderr.count("\n") == 1, restore
    assert_nothing_left(home, VICTIM)
    return str(problem)


def _rewrite_table(members: list[Member], table: str, change: object) -> None:
    member = members[next(i for i, m in enumerate(members) if m.name == f"tables/{table}.jsonl")]
    header, rows = table_rows(member)
    change(header["columns"], rows)  # type: ignore[operator]
    replace_data(members, member.name, table_dump(header, rows), declare=True)


def _unrevoke(columns: list[str], rows: list[list[object]]) -> None:
    at = columns.index("revoked_at")
    revoked = [r for r in rows if r[at] is not None]
    assert revoked
    for row in revoked:
        row[at] = None


# ---- edits without the key ------------------------------------------------------------------


def test_edited_tables_with_recomputed_hashes_but_no_signature_are_refused(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    members = read_members(sqlite_source.plain.path)
    signature = members[1]
    _rewrite_table(members, "mandates", _unrevoke)
    members[1] = signature  # what an attacker without the key has: the old signature
    archive = write_members(tmp_path / "edited.tar.gz", members)
    refused(archive, home, "manifest signature does not verify")


def test_a_stripped_signature_is_refused(sqlite_source: Source, home: Path, tmp_path: Path) -> None:
    members = [m for m in read_members(sqlite_source.plain.path) if m.name != "manifest.sig"]
    archive = write_members(tmp_path / "unsigned.tar.gz", members)
    refused(archive, home, "not signed")


def test_the_whole_archive_re_signed_with_a_key_of_ones_own_is_untrusted(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    """Rewrite the tables, replace the archived pin with one's own key, re-sign the tree head
    and the manifest with it: everything inside agrees, and nothing here trusts that key."""
    members = read_members(sqlite_source.plain.path)
    _rewrite_table(members, "mandates", _unrevoke)
    pair = generate_key_pair()
    private = load_private(pair.private_der)
    pin = next(i for i, m in enumerate(members) if m.name.startswith("keys/ledger-"))
    members[pin] = regular(f"keys/ledger-{pair.kid}.pub.pem", pair.public_pem.encode())
    manifest = manifest_of(members)
    old_pin = next(k for k in manifest["members"] if k.startswith("keys/ledger-"))
    del manifest["members"][old_pin]
    data = pair.public_pem.encode()
    manifest["members"][f"keys/ledger-{pair.kid}.pub.pem"] = {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    head = manifest["ledger"]["tree_head"]
    forged = sign_head(
        private, pair.kid, head["workspace_id"], head["size"], head["root"], head["last_hash"],
        head["ts"],
    )  # fmt: skip
    manifest["ledger"]["tree_head"] = forged.to_dict()
    raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
    members[0] = regular("manifest.json", raw)
    fingerprint = key_fingerprint(private.public_key())
    members[1] = regular("manifest.sig", signature_document(private, pair.kid, fingerprint, raw))
    archive = write_members(tmp_path / "forged.tar.gz", members)
    problem = refused(
        archive, home, f"sha256:{fingerprint}", "which no workspace here pins", trusting=False
    )
    assert "--trust-key" in problem
    # Told to trust the real workspace's key, it still refuses: this is not that key.
    wrong = cli("backup", "verify", str(archive), "--trust-key", f"sha256:{'0' * 64}")
    assert wrong.code == ExitCode.INTEGRITY and "not by a key you trust" in wrong.stderr, wrong


def test_a_signature_by_another_workspaces_key_is_untrusted(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    """A real Caracal ledger key of another workspace (pinned there, not for this id)."""
    ok(cli("workspace", "create", "other"))
    from caracal.services.facade import Caracal
    from caracal.store import ledger_rows

    with Caracal.open("other") as app, app.store.read() as conn:
        other = ledger_rows.read_head(conn).signed(app.workspace_id)
        assert other is not None
        private = app.ledger_heads.private_key(conn, other.kid)
        pem = (app.paths.keys / f"ledger-{other.kid}.pub.pem").read_bytes()
    members = read_members(sqlite_source.plain.path)
    manifest = manifest_of(members)
    members.insert(2, regular(f"keys/ledger-{other.kid}.pub.pem", pem))
    manifest["members"][f"keys/ledger-{other.kid}.pub.pem"] = {
        "size": len(pem),
        "sha256": hashlib.sha256(pem).hexdigest(),
    }
    raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
    members[0] = regular("manifest.json", raw)
    fingerprint = key_fingerprint(private.public_key())
    members[1] = regular("manifest.sig", signature_document(private, other.kid, fingerprint, raw))
    archive = write_members(tmp_path / "other.tar.gz", members)
    verify = cli("backup", "verify", str(archive), "--json", trusting=False)
    assert verify.code == ExitCode.INTEGRITY, verify
    assert "which no workspace here pins" in verify.json()["problem"], verify


# ---- edits with the key: the tables must still match the ledger ------------------------------


@pytest.mark.parametrize("locked", [False, True], ids=["unlocked", "locked"])
def test_a_revocation_removed_from_the_tables_is_refused_even_when_re_signed(
    sqlite_source: Source, home: Path, tmp_path: Path, locked: bool
) -> None:
    archive = sqlite_source.locked if locked else sqlite_source.plain
    members = read_members(archive.path, LOCK_KEY if locked else None)
    _rewrite_table(members, "mandates", _unrevoke)  # set_manifest re-signs with the real key
    path = write_members(
        tmp_path / f"unrevoked.tar.gz{'.locked' if locked else ''}",
        members,
        LOCK_KEY if locked else None,
    )
    refused(path, home, "tables do not match its ledger", "column revoked", locked=locked)


def test_an_injected_key_and_mandate_are_refused_even_when_re_signed(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    members = read_members(sqlite_source.plain.path)
    pair = generate_key_pair()

    def add_key(columns: list[str], rows: list[list[object]]) -> None:
        human = rows[0][columns.index("principal_id")]
        row: dict[str, object] = {c: None for c in columns}
        row.update(kid=pair.kid, principal_id=human, public_pem=pair.public_pem)
        row.update(status="active", created_at=0.0)
        rows.append([row[c] for c in columns])

    _rewrite_table(members, "principal_keys", add_key)
    manifest = manifest_of(members)
    manifest["tables"]["principal_keys"]["rows"] += 1
    set_manifest(members, manifest)
    path = write_members(tmp_path / "injected.tar.gz", members)
    refused(path, home, f"principal_keys row {pair.kid} was not made by any event")


def test_a_rewritten_ledger_is_refused_even_when_the_manifest_is_re_signed(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    members = read_members(sqlite_source.plain.path)

    def shorter_expiry(columns: list[str], rows: list[list[object]]) -> None:
        at, kind = columns.index("payload"), columns.index("type")
        row = next(r for r in rows if r[kind] == "mandate.issued")
        payload = json.loads(str(row[at]))
        payload["expires_at"] += 86_400
        row[at] = json.dumps(payload, sort_keys=True, separators=(",", ":"))

    _rewrite_table(members, "ledger_events", shorter_expiry)
    path = write_members(tmp_path / "rewritten.tar.gz", members)
    refused(path, home, "ledger")


# ---- trusting a key -----------------------------------------------------------------------


def test_an_archive_from_elsewhere_needs_its_fingerprint(sqlite_source: Source, home: Path) -> None:
    archive = sqlite_source.plain
    fingerprint = archive.created["signed_by"]
    untrusted = cli("backup", "verify", str(archive.path), "--json", trusting=False)
    assert untrusted.code == ExitCode.INTEGRITY, untrusted
    assert f"sha256:{fingerprint}" in untrusted.json()["problem"]
    assert untrusted.json()["signed_by"] is None
    report = ok(
        cli(
            "backup",
            "verify",
            str(archive.path),
            "--trust-key",
            f"sha256:{fingerprint}",
            "--json",
            trusting=False,
        )
    ).json()
    assert report["signed_by"] == fingerprint
    assert report["trust"] == "the fingerprint given with --trust-key"
    restore = cli("backup", "restore", str(archive.path), "--as", VICTIM, trusting=False)
    assert restore.code == ExitCode.INTEGRITY and fingerprint in restore.stderr, restore
    assert_nothing_left(home, VICTIM)

    ok(cli("backup", "restore", str(archive.path), "--as", VICTIM, "--trust-archive-key",
           trusting=False))  # fmt: skip
    events = ok(cli("ledger", "list", "--type", "backup.restored", "--json", workspace=VICTIM))
    [event] = events.json()
    assert event["payload"]["trust"] == "accepted with --trust-archive-key"
    assert event["payload"]["signed_by"] == fingerprint
    # The restored workspace pins the key: its own backups of itself are trusted from now on.
    ok(cli("backup", "verify", str(archive.path), trusting=False))


def test_backup_create_prints_the_fingerprint_the_workspace_pins(home: Path) -> None:
    ok(cli("workspace", "create", "demo"))
    made = ok(cli("backup", "create"))
    [pin] = (home / "workspaces" / "demo" / "keys").glob("ledger-k_*.pub.pem")
    from caracal.core.keys import load_public

    fingerprint = key_fingerprint(load_public(pin.read_text()))
    assert f"sha256:{fingerprint}" in made.stderr, made
    shown = ok(cli("ledger", "head", "--json")).json()
    assert shown["key_sha256"] == fingerprint
