"""Fuzzing backup archives: mutations of a real small archive, read by `verify_archive` and
`restore` (the functions behind `caracal backup verify` and `backup restore`).

Cases: short mode 1,000 archives; `CARACAL_PROVING=long` 10,000. Each case mutates the archive
written by `caracal backup create` for a small workspace (unlocked, or one time in seven
locked, re-sealed with scrypt's cheapest accepted cost so that the same code runs faster) at
one of three levels:

- bytes of the archive file as written (the gzip stream, or the locked envelope);
- bytes of the tar stream inside, gzip'd again exactly as Caracal does, so that the gzip CRC
  holds and tar parsing is reached;
- members: a member's content changed (with the manifest left alone, or "forged": its size
  and hash declared anew), manifest fields changed, members dropped, duplicated, reordered,
  renamed or turned into links and directories.

Then `verify_archive` returns a report or raises a `CaracalError`, and `restore` either
raises a `CaracalError` leaving nothing behind (no workspace, no hidden staging folder), or
succeeds. A success must be identical to restoring the original archive (every table row,
the ledger, the secrets). A forged archive (member hashes declared anew) no longer matches
the manifest's signature by the workspace's ledger key, so it must be refused; should one
ever restore, it must open with its ledger verifying. Every case within its CPU budget.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given

from caracal.core.errors import CaracalError
from caracal.home.flow_state import read_state
from caracal.services.backup import envelope
from caracal.services.backup.archive_check import verify_archive
from caracal.services.backup.restore import restore
from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceManager
from tests.backup.conftest import Member, read_members, regular, snapshot, write_members
from tests.security.fuzzing import (
    TIMEOUT,
    Shown,
    Tally,
    build_world,
    fast_cli,
    fuzz_settings,
    isolated_home,
    leftovers,
    mutate_bytes,
    mutate_text,
    random_json,
    random_text,
    rngs,
    tallied,
)
from tests.support.cli import run_cli

pytestmark = TIMEOUT

LOCK_ENV = "CARACAL_FUZZ_LOCK_KEY"
LOCK_KEY = "fuzzing lock key 0123456789"
VICTIM = "victim"


@dataclass(repr=False)
class Source(Shown):
    home: Path
    folder: Path
    plain: bytes
    locked: bytes
    members: list[Member]
    reference: dict[str, Any]  # the original archive, restored and normalised
    tally: Tally
    counter: int = 0

    def next_path(self, locked: bool) -> Path:
        self.counter += 1
        return self.folder / f"case-{self.counter}.tar.gz{'.locked' if locked else ''}"


# The source's ledger keys. An unlocked archive carries no private key, so each restore of it
# signs its `backup.restored` event with a ledger key of its own, which differs every time.
SOURCE_KIDS: set[str] = set()


def normalised(name: str) -> dict[str, Any]:
    """A restored workspace's content, without what legitimately differs between restores:
    its name, migration times, the `backup.restored` event (and the head after it and the
    ledger key that signed it, when the restore made one), and secrets' ciphertext (compared
    decrypted)."""
    snap = snapshot(name)
    tables = dict(snap.tables)
    tables["ledger_keys"] = [k for k in tables["ledger_keys"] if k["kid"] in SOURCE_KIDS]
    secrets = {
        ref: value[:2]
        for ref, value in snap.secrets.items()
        if not ref.startswith("ledger/") or ref.rsplit("/", 1)[-1] in SOURCE_KIDS
    }
    tables["caracal_schema"] = [
        {k: v for k, v in r.items() if k != "applied_at"} for r in tables["caracal_schema"]
    ]
    tables["meta"] = [r for r in tables["meta"] if r["key"] != "workspace_name"]
    events = tables["ledger_events"]
    assert events[-1]["type"] == "backup.restored"
    tables["ledger_events"] = events[:-1]
    for volatile in ("ledger_head", "secrets"):
        tables.pop(volatile)
    return {"tables": tables, "secrets": secrets}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    root = tmp_path_factory.mktemp("fuzz-backup")
    home = root / "home"
    with (
        isolated_home(home),
        fast_cli(),
        pytest.MonkeyPatch.context() as mp,
        tallied("backup archives") as tally,
    ):
        mp.setenv(LOCK_ENV, LOCK_KEY)
        build_world(encrypted_config=True)
        created = run_cli("backup", "create", "--json", "--output", str(root / "plain.tar.gz"))
        assert created.code == 0, created
        SOURCE_KIDS.update(k["kid"] for k in snapshot("fuzz").tables["ledger_keys"])
        plain = (root / "plain.tar.gz").read_bytes()
        members = read_members(root / "plain.tar.gz")
        # Locked, with scrypt's cheapest accepted cost (the reader takes it from the header).
        with pytest.MonkeyPatch.context() as cheap:
            cheap.setitem(envelope._KDF, "n", 2**14)
            locked_path = write_members(root / "locked.tar.gz.locked", members, LOCK_KEY)
        manager = WorkspaceManager()
        restore(manager, root / "plain.tar.gz", "reference")
        reference = normalised("reference")
        restore(manager, locked_path, "reference2", lock_key=LOCK_KEY)
        assert normalised("reference2")["tables"] == reference["tables"]
        cases = root / "cases"
        cases.mkdir()
        yield Source(home, cases, plain, locked_path.read_bytes(), members, reference, tally)


# ---- mutations ----------------------------------------------------------------------------
def regzip(tar_bytes: bytes) -> bytes:
    """Gzip exactly as Caracal writes (level 1, no name, mtime 0): the header check passes."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0, filename="") as gz:
        gz.write(tar_bytes)
    return out.getvalue()


def _special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, 0o600, 0
    return Member(info)


def _declare(members: list[Member], name: str, data: bytes) -> None:
    """Forge the manifest to match `data`: size, hash and, for a table, its row count."""
    manifest = json.loads(members[0].data)
    manifest["members"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    table = name.removeprefix("tables/").removesuffix(".jsonl")
    if name.startswith("tables/") and table in manifest["tables"]:
        manifest["tables"][table]["rows"] = max(len(data.splitlines()) - 1, 0)
    members[0] = regular("manifest.json", json.dumps(manifest, indent=1).encode())


def _changed_text(rng: random.Random, data: bytes) -> bytes:
    """A text member changed the way a person or a bug would: a line or a value."""
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    roll = rng.random()
    if roll < 0.3 and lines:
        at = rng.randrange(len(lines))
        op = rng.choice(["drop", "duplicate", "swap", "edit"])
        if op == "drop":
            del lines[at]
        elif op == "duplicate":
            lines.insert(at, lines[at])
        elif op == "swap":
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        else:
            lines[at] = _edited_json_line(rng, lines[at])
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    if roll < 0.7:
        return mutate_text(rng, text).encode("utf-8", "surrogatepass")
    return mutate_bytes(rng, data)


def _edited_json_line(rng: random.Random, line: str) -> str:
    try:
        value = json.loads(line)
    except ValueError:
        return mutate_text(rng, line)
    if isinstance(value, list) and value:
        value[rng.randrange(len(value))] = rng.choice(
            [
                None,
                0,
                -1,
                2**63,
                10**400,
                1.5,
                "",
                "\ud800",
                {"$b64": "!!"},
                {"$b64": 5},
                [1],
                True,
                random_text(rng, 10),
                random_json(rng, 1),
            ]
        )
    elif isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        value[key] = random_json(rng, 1)
    return json.dumps(value)


MANIFEST_VALUES: list[Any] = [None, 0, 1, 2, -1, 2**63, "1", "", [], {}, "caracal-backup", 10**30]


def mutate_members(rng: random.Random, members: list[Member]) -> tuple[list[Member], bool]:
    """Member-level changes; returns the members and whether the manifest was forged."""
    members = copy.deepcopy(members)
    roll = rng.random()
    if roll < 0.45:  # one member's content
        at = rng.randrange(1, len(members))
        member = members[at]
        data = _changed_text(rng, member.data)
        members[at] = regular(member.name, data)
        if rng.random() < 0.8:
            _declare(members, member.name, data)
            return members, True
        return members, False
    if roll < 0.7:  # the manifest
        manifest = json.loads(members[0].data)
        for _ in range(rng.randint(1, 2)):
            path = _manifest_path(rng, manifest)
            node = manifest
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = (
                copy.deepcopy(rng.choice(MANIFEST_VALUES))
                if rng.random() < 0.7
                else random_json(rng, 1)
            )
        members[0] = regular("manifest.json", json.dumps(manifest).encode())
        return members, True
    return _rearranged(rng, members), False


RENAMES = [
    "config.yaml",
    "tables/evil.jsonl",
    "../x",
    "/etc/x",
    "tables/x/../y",
    "keys/ledger-k_0000000000000000.pub.pem",
]


def _rearranged(rng: random.Random, members: list[Member]) -> list[Member]:
    """The list of members changed: dropped, duplicated, reordered, renamed, retyped."""
    op = rng.choice(["drop", "duplicate", "reorder", "rename", "link", "dir", "pax", "extra"])
    at = rng.randrange(len(members))
    name = members[at].name
    if op == "drop":
        del members[at]
    elif op == "duplicate":
        members.insert(rng.randrange(len(members) + 1), copy.deepcopy(members[at]))
    elif op == "reorder":
        other = rng.randrange(len(members))
        members[at], members[other] = members[other], members[at]
    elif op == "rename":
        new = rng.choice(RENAMES) if rng.random() < 0.8 else random_text(rng, 12)
        new = new.encode("utf-8", "replace").decode()  # what a tar header can hold
        members[at] = regular(new, members[at].data)
    elif op == "link":
        kind = rng.choice([tarfile.SYMTYPE, tarfile.LNKTYPE])
        members[at] = _special(name, kind, "/etc/passwd")
    elif op == "dir":
        members[at] = _special(name, rng.choice([tarfile.DIRTYPE, tarfile.FIFOTYPE]))
    elif op == "pax":
        members[at].info.pax_headers = {"path": rng.choice(["/etc/x", "../x", "manifest.json"])}
    else:
        members.insert(rng.randrange(1, len(members) + 1), regular("flow_state.json", b"{}"))
    return members


def _manifest_path(rng: random.Random, manifest: dict[str, Any]) -> list[Any]:
    path: list[Any] = [rng.choice([*sorted(manifest), "extra"])]
    node = manifest.get(path[0])
    while isinstance(node, dict) and node and rng.random() < 0.6:
        key = rng.choice(sorted(node))
        path.append(key)
        node = node[key]
    return path


def mutated_archive(rng: random.Random, src: Source) -> tuple[str, bool, bool, bytes]:
    """(level, locked, forged, archive bytes)."""
    locked = rng.random() < 1 / 7
    level = rng.choice(["bytes", "tar", "members", "members"])
    if level == "bytes":
        return level, locked, False, mutate_bytes(rng, src.locked if locked else src.plain)
    if level == "tar":
        tar = gzip.decompress(src.plain)
        data = regzip(mutate_bytes(rng, tar))
        return level, False, False, data
    members, forged = mutate_members(rng, src.members)
    path = src.folder / "scratch"
    path.unlink(missing_ok=True)
    if locked:
        with pytest.MonkeyPatch.context() as cheap:
            cheap.setitem(envelope._KDF, "n", 2**14)
            write_members(path, members, LOCK_KEY)
    else:
        write_members(path, members)
    return level, locked, forged, path.read_bytes()


# ---- the property -------------------------------------------------------------------------
def check_archive(src: Source, level: str, locked: bool, forged: bool, data: bytes) -> None:
    path = src.next_path(locked)
    path.write_bytes(data)
    key = LOCK_KEY if locked else None
    tally = src.tally
    with tally.case():
        try:
            report = verify_archive(path, key)
        except CaracalError as exc:
            tally.saw(f"verify {type(exc).__name__}")
            verified = False
        else:
            verified = report.ok
            tally.saw("verify ok" if report.ok else "verify problem")
        manager = WorkspaceManager()
        try:
            restore(manager, path, VICTIM, lock_key=key)
        except CaracalError as exc:
            tally.saw(f"restore {type(exc).__name__}")
            assert "\n" not in exc.message, exc.message
            assert leftovers(src.home, VICTIM) == [], "a failed restore left something behind"
            if verified and not forged:
                tally.saw("verified but not restored")
            return
    tally.saw(f"restored ({level}{', forged' if forged else ''})")
    try:
        if forged:
            try:
                with Caracal.open(VICTIM) as app:
                    assert app.ledger.verify().ok
                    app.principals.all()
                    read_state(app.paths.flow_state)
            except CaracalError as exc:  # refusing to work with what was forged is fine
                tally.saw(f"forged restore then refused: {type(exc).__name__}")
        else:
            assert normalised(VICTIM) == src.reference, f"{level} mutant restored differently"
    finally:
        manager.delete(VICTIM, backup_first=False)
    path.unlink()


@example(rng=random.Random(0))
@given(rng=rngs)
@fuzz_settings(short=1_000)
def test_mutated_archives_are_refused_cleanly_or_restore_identically(
    source: Source, rng: random.Random
) -> None:
    level, locked, forged, data = mutated_archive(rng, source)
    check_archive(source, level, locked, forged, data)


def test_the_original_archives_restore_identically(source: Source) -> None:
    check_archive(source, "original", False, False, source.plain)
    check_archive(source, "original", True, False, source.locked)


# Member contents no random change is likely to produce, each with its manifest entry forged.
KEPT_MEMBERS: list[tuple[str, bytes]] = [
    ("config.yaml", b"store: [1]\n"),
    ("config.yaml", b"store: abc\n"),
    ("config.yaml", b"store: {url: 5}\n"),
    ("config.yaml", b"x: &a [*a]\n"),
    ("config.yaml", b"created_at: 2024-02-30\n"),
    ("config.yaml", b"workspace: " + b"[" * 5000 + b"\n"),
    ("config.yaml", b"\xff\xfe"),
    ("config-secrets.json", b'{"runtime.redis_url": 5, "store.url": "x"}'),
    ("config-secrets.json", b'{"nope.key": "x"}'),
    ("config-secrets.json", b"[1]"),
    ("flow_state.json", b"[" * 100_000),
    ("providers.json", b"\xff"),
    # the store's workspace id is not the one the ledger was verified under
    ("tables/meta.jsonl", b'{"table": "meta", "columns": ["key", "value"]}\n["x", "y"]\n'),
    ("tables/principals.jsonl", b'{"table": "principals", "columns": []}\n'),
    # a checkpoint whose sequence number is bytes (`$b64`) or a list: the verifiers choked
    *(
        (
            "tables/ledger_checkpoints.jsonl",
            b'{"table": "ledger_checkpoints", "columns": ["seq_to", "seq_from", "head_hash", '
            b'"kid", "signature", "created_at"]}\n[' + seq_to + b', 1, "h", "k", "s", 1.0]\n',
        )
        for seq_to in (b'{"$b64": ""}', b"[1]")
    ),
    # no ledger head row, or one that is not numbers (found in long mode)
    ("tables/ledger_head.jsonl", b'{"table": "ledger_head", "columns": ["id", "seq", "hash"]}\n'),
    (
        "tables/ledger_head.jsonl",
        b'{"table": "ledger_head", "columns": ["id", "seq", "hash"]}\n[1, "x", 5]\n',
    ),
]


@pytest.mark.parametrize(("name", "data"), KEPT_MEMBERS, ids=range(len(KEPT_MEMBERS)))
def test_kept_member_contents(source: Source, name: str, data: bytes) -> None:
    members = copy.deepcopy(source.members)
    found = [i for i, m in enumerate(members) if m.name == name]
    if found:
        members[found[0]] = regular(name, data)
    else:
        members.insert(1, regular(name, data))
    _declare(members, name, data)
    path = source.folder / "scratch"
    path.unlink(missing_ok=True)
    write_members(path, members)
    check_archive(source, "kept", False, True, path.read_bytes())
