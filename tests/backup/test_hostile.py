"""Hostile and broken archives: each is refused with a clear error by both `backup verify` and
`backup restore`, and a refused restore leaves nothing behind.

Every hostile archive starts from a valid one written by `caracal backup create`, rewritten
member by member with one change (`test_rewriting_alone_changes_nothing` shows the rewriting
itself is faithful)."""

from __future__ import annotations

import base64
import copy
import gzip
import io
import json
import os
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caracal.cli.exit_codes import ExitCode
from caracal.services.backup import tables as tables_module
from tests.backup.conftest import (
    LOCK_ENV,
    LOCK_KEY,
    Member,
    Source,
    assert_clear_error,
    assert_nothing_left,
    cli,
    index_of,
    manifest_of,
    ok,
    read_members,
    regular,
    replace_data,
    set_manifest,
    snapshot,
    table_dump,
    table_rows,
    write_members,
)

VICTIM = "victim"
LOCK = ("--lock-key-env", LOCK_ENV)


def assert_refused(
    archive: Path,
    home: Path,
    code: ExitCode,
    *needles: str,
    locked: bool = False,
    pg_url: str | None = None,
) -> None:
    """`verify` reports the problem (exit 7 with a JSON report, or a one-line error for other
    codes); `restore` fails with a one-line error; nothing is left behind."""
    extra = LOCK if locked else ()
    verify = cli("backup", "verify", str(archive), *extra, "--json")
    assert verify.code == int(code), verify
    if code == ExitCode.INTEGRITY:
        report = verify.json()
        assert report["ok"] is False and report["problem"], report
        for needle in needles:
            assert needle.lower() in report["problem"].lower(), report
    else:
        assert_clear_error(verify, code, *needles)
    restore = cli("backup", "restore", str(archive), "--as", VICTIM, *extra)
    assert_clear_error(restore, code, *needles)
    assert_nothing_left(home, VICTIM, pg_url)


@pytest.fixture
def members(sqlite_source: Source) -> list[Member]:
    """A fresh copy of the unlocked archive's members, ready for one hostile change."""
    return read_members(sqlite_source.plain.path)


@pytest.fixture(scope="module")
def damageable(
    sources: Callable[[str], Source], tmp_path_factory: pytest.TempPathFactory
) -> dict[bool, bytes]:
    """Archives to truncate and flip: the unlocked one as written, and the locked one re-sealed
    with scrypt's cheapest accepted cost (n=2**14; the reader takes the cost from the archive's
    header), so the same code paths run in a fraction of the time."""
    from caracal.services.backup import envelope

    source = sources("sqlite")
    fast = tmp_path_factory.mktemp("fast") / "fast.tar.gz.locked"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(envelope._KDF, "n", 2**14)
        write_members(fast, read_members(source.locked.path, LOCK_KEY), LOCK_KEY)
    raw, start = fast.read_bytes(), len(envelope.MAGIC) + 4
    header = json.loads(raw[start : start + int.from_bytes(raw[start - 4 : start], "big")])
    assert header["kdf"] == {"name": "scrypt", "n": 2**14, "r": 8, "p": 1}
    return {False: source.plain.path.read_bytes(), True: fast.read_bytes()}


def test_rewriting_alone_changes_nothing(
    sqlite_source: Source, members: list[Member], home: Path, tmp_path: Path
) -> None:
    original = sqlite_source.plain.path
    rewritten = write_members(tmp_path / "same.tar.gz", members)
    assert rewritten.read_bytes() == original.read_bytes()
    locked = read_members(sqlite_source.locked.path, LOCK_KEY)
    relocked = write_members(tmp_path / "same.tar.gz.locked", locked, LOCK_KEY)
    ok(cli("backup", "verify", str(relocked), *LOCK))
    ok(cli("backup", "restore", str(relocked), "--as", VICTIM, *LOCK))


# ---- unsafe members ------------------------------------------------------------------------
def _special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, 0o600, 0
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = (1, 3) if kind == tarfile.CHRTYPE else (8, 0)
    return Member(info)


def _pax_path(path: str) -> Member:
    member = regular("providers.json", b"[]")
    member.info.pax_headers = {"path": path}  # overrides the harmless ustar name on reading
    return member


HOSTILE: dict[str, tuple[Member, str]] = {
    "absolute-path": (regular("/etc/caracal-evil", b"owned\n"), "unsafe path"),
    "absolute-known-name": (regular("/config.yaml", b"workspace: x\n"), "unsafe path"),
    "absolute-via-pax-header": (_pax_path("/etc/caracal-evil"), "unsafe path"),
    "dotdot": (regular("../outside.txt", b"owned\n"), "unsafe path"),
    "dotdot-inside": (regular("tables/../config.yaml", b"x: 1\n"), "unsafe path"),
    "backslash": (regular("..\\outside.txt", b"owned\n"), "unsafe path"),
    "symlink-absolute": (_special("config.yaml", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    "symlink-relative": (_special("flow_state.json", tarfile.SYMTYPE, "../../x"), "is a link"),
    "hardlink": (_special("providers.json", tarfile.LNKTYPE, "config.yaml"), "is a link"),
    "hardlink-absolute": (_special("config.yaml", tarfile.LNKTYPE, "/etc/shadow"), "is a link"),
    "char-device": (_special("providers.json", tarfile.CHRTYPE), "not a regular file"),
    "block-device": (_special("config.yaml", tarfile.BLKTYPE), "not a regular file"),
    "fifo": (_special("flow_state.json", tarfile.FIFOTYPE), "not a regular file"),
    "directory": (_special("tables", tarfile.DIRTYPE), "not a regular file"),
    "unknown-name": (regular("evil.sh", b"#!/bin/sh\nrm -rf ~\n"), "not part of a caracal backup"),
    "unlisted-table": (regular("tables/evil.jsonl", b"{}\n"), "not listed in its manifest"),
}


@pytest.mark.parametrize("position", ["after-manifest", "after-tables"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_unsafe_member_is_refused(
    kind: str, position: str, members: list[Member], home: Path, tmp_path: Path
) -> None:
    hostile, needle = HOSTILE[kind]
    sentinel = tmp_path / "outside.txt"
    sentinel.write_text("untouched")
    members.insert(1 if position == "after-manifest" else len(members), copy.deepcopy(hostile))
    archive = write_members(tmp_path / f"{kind}.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, needle)
    assert sentinel.read_text() == "untouched"
    assert list(tmp_path.rglob("outside.txt")) == [sentinel]  # nothing was extracted
    assert not Path("/etc/caracal-evil").exists()


def test_duplicate_member_is_refused(members: list[Member], home: Path, tmp_path: Path) -> None:
    members.append(copy.deepcopy(members[index_of(members, "providers.json")]))
    archive = write_members(tmp_path / "duplicate.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "not listed in its manifest")


def test_unsafe_member_inside_a_locked_archive_is_refused(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    members = read_members(sqlite_source.locked.path, LOCK_KEY)
    members.insert(1, copy.deepcopy(HOSTILE["symlink-absolute"][0]))
    archive = write_members(tmp_path / "symlink.tar.gz.locked", members, LOCK_KEY)
    assert_refused(archive, home, ExitCode.INTEGRITY, "is a link", locked=True)


def test_unsafe_member_after_the_tables_leaves_no_store_behind(
    backend: str,
    sqlite_source: Source,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused only once the staged workspace and its store exist: both are removed (on
    PostgreSQL, the schema too)."""
    members = read_members(sqlite_source.plain.path)
    members.append(copy.deepcopy(HOSTILE["symlink-absolute"][0]))
    archive = write_members(tmp_path / "late.tar.gz", members)
    pg_url = os.environ.get("CARACAL_STORE_URL") if backend == "postgresql" else None
    real, loaded = tables_module.load_table, []

    def counting_load(conn: Any, table: Any, stream: Any, on_batch: Any = None) -> int:
        loaded.append(table.name)
        return real(conn, table, stream, on_batch)

    monkeypatch.setattr(tables_module, "load_table", counting_load)
    assert_refused(archive, home, ExitCode.INTEGRITY, "is a link", pg_url=pg_url)
    assert len(loaded) == len(sqlite_source.plain.created["tables"])  # every table was loaded


# ---- members that do not match their manifest ------------------------------------------------
def test_member_larger_than_its_manifest_says(
    members: list[Member], home: Path, tmp_path: Path
) -> None:
    data = members[index_of(members, "providers.json")].data
    replace_data(members, "providers.json", data + b" " * 4096, declare=False)
    archive = write_members(tmp_path / "larger.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "providers.json", "size its manifest says")


def test_member_smaller_than_its_manifest_says(
    members: list[Member], home: Path, tmp_path: Path
) -> None:
    data = members[index_of(members, "tables/principals.jsonl")].data
    replace_data(members, "tables/principals.jsonl", data[:-10], declare=False)
    archive = write_members(tmp_path / "smaller.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "principals.jsonl", "size its manifest says")


def test_member_altered_in_place_is_refused(
    members: list[Member], home: Path, tmp_path: Path
) -> None:
    data = members[index_of(members, "config.yaml")].data
    assert b"checkpoint_every: 10" in data
    replace_data(members, "config.yaml", data.replace(b"every: 10", b"every: 99"), declare=False)
    archive = write_members(tmp_path / "altered.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "config.yaml", "does not match its manifest")


def test_missing_member_is_refused(members: list[Member], home: Path, tmp_path: Path) -> None:
    del members[index_of(members, "tables/mandates.jsonl")]
    archive = write_members(tmp_path / "missing.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "missing member tables/mandates.jsonl")


def test_table_with_fewer_rows_than_the_manifest_counts(
    members: list[Member], home: Path, tmp_path: Path
) -> None:
    header, rows = table_rows(members[index_of(members, "tables/principals.jsonl")])
    replace_data(members, "tables/principals.jsonl", table_dump(header, rows[:-1]), declare=True)
    archive = write_members(tmp_path / "rows.tar.gz", members)
    expected = f"table principals has {len(rows) - 1} rows; the manifest says {len(rows)}"
    assert_refused(archive, home, ExitCode.INTEGRITY, expected)


def test_rewritten_ledger_history_is_refused(
    members: list[Member], home: Path, tmp_path: Path
) -> None:
    """A consistent rewrite (hashes updated in the manifest) of one ledger event still breaks
    the hash chain."""
    name = "tables/ledger_events.jsonl"
    header, rows = table_rows(members[index_of(members, name)])
    payload = header["columns"].index("payload")
    rows[5][payload] = rows[5][payload].replace("}", ', "forged": true}', 1)
    replace_data(members, name, table_dump(header, rows), declare=True)
    archive = write_members(tmp_path / "forged.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "ledger")


def _manifest_case(members: list[Member], change: str) -> None:
    manifest = manifest_of(members)
    if change == "manifest-not-first":
        members.insert(2, members.pop(0))
    elif change == "manifest-not-json":
        members[0] = regular("manifest.json", b'{"format": "caracal-backup", "version": 1,')
    elif change == "other-format":
        manifest["format"] = "someone-elses-backup"
        set_manifest(members, manifest)
    elif change == "member-list-names-a-stranger":
        manifest["members"]["../escape"] = {"size": 1, "sha256": "0" * 64}
        set_manifest(members, manifest)
    elif change == "negative-size":
        manifest["members"]["providers.json"]["size"] = -1
        set_manifest(members, manifest)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("manifest-not-first", "does not start with a backup manifest"),
        ("manifest-not-json", "damaged manifest"),
        ("other-format", "is not a caracal backup"),
        ("member-list-names-a-stranger", "malformed manifest member list"),
        ("negative-size", "malformed manifest member list"),
    ],
)
def test_broken_manifest_is_refused(
    change: str, needle: str, members: list[Member], home: Path, tmp_path: Path
) -> None:
    _manifest_case(members, change)
    archive = write_members(tmp_path / f"{change}.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, needle)


@pytest.mark.parametrize("missing", ["ledger.head_seq", "tables", "ledger"])
def test_manifest_without_ledger_head_or_table_counts_is_refused(
    missing: str, members: list[Member], home: Path, tmp_path: Path
) -> None:
    manifest = manifest_of(members)
    if missing == "ledger.head_seq":
        del manifest["ledger"]["head_seq"]
    elif missing == "ledger":
        manifest["ledger"] = "head"
    else:
        del manifest[missing]
    set_manifest(members, manifest)
    archive = write_members(tmp_path / "incomplete.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "manifest")


def _damaged_pin(pem: bytes) -> bytes:
    """The same PEM, same length, with the key's algorithm OID changed (not an EC key)."""
    lines = pem.decode().splitlines(keepends=True)
    der = bytearray(base64.b64decode("".join(line.strip() for line in lines[1:-1])))
    der[12] = 0x31  # 1.2.840.10045.2.1 (id-ecPublicKey) -> 1.2.840.10045.2.49
    encoded = base64.b64encode(bytes(der)).decode()
    out, pos = [lines[0]], 0
    for line in lines[1:-1]:
        width = len(line.strip())
        out.append(encoded[pos : pos + width] + line[width:])
        pos += width
    damaged = "".join([*out, lines[-1]]).encode()
    assert len(damaged) == len(pem) and damaged != pem
    return damaged


@pytest.mark.parametrize("declared", [False, True], ids=["hash-mismatch", "hash-updated"])
def test_damaged_ledger_key_pin_is_refused(
    declared: bool, members: list[Member], home: Path, tmp_path: Path
) -> None:
    pin = next(m for m in members if m.name.startswith("keys/ledger-"))
    replace_data(members, pin.name, _damaged_pin(pin.data), declare=declared)
    archive = write_members(tmp_path / "pin.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, pin.name if not declared else "key")


def test_unknown_format_version_is_refused(
    members: list[Member], home: Path, tmp_path: Path
) -> None:
    manifest = manifest_of(members)
    manifest["version"] = 3
    set_manifest(members, manifest)
    archive = write_members(tmp_path / "v3.tar.gz", members)
    assert_refused(archive, home, ExitCode.INVALID, "format version 3", "reads version 2")


def test_archive_from_a_newer_store_schema_is_refused(
    members: list[Member], home: Path, tmp_path: Path
) -> None:
    manifest = manifest_of(members)
    manifest["schema_version"] = 999
    set_manifest(members, manifest)
    archive = write_members(tmp_path / "future.tar.gz", members)
    assert_refused(archive, home, ExitCode.INVALID, "newer caracal", "upgrade")


# ---- the container: gzip header, bounds, bombs -------------------------------------------
def test_gzip_header_must_be_exactly_caracals(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    data = bytearray(sqlite_source.plain.path.read_bytes())
    data[4:8] = (1_700_000_000).to_bytes(4, "little")  # an mtime: gzip's CRC does not cover it
    archive = tmp_path / "mtime.tar.gz"
    archive.write_bytes(bytes(data))
    assert gzip.decompress(bytes(data)) == gzip.decompress(sqlite_source.plain.path.read_bytes())
    assert_refused(archive, home, ExitCode.INTEGRITY, "header is damaged")


def test_an_ordinary_tarball_is_refused(members: list[Member], home: Path, tmp_path: Path) -> None:
    archive = tmp_path / "ordinary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # default gzip header: name, mtime, level 9
        for member in members:
            tar.addfile(member.info, io.BytesIO(member.data))
    assert_refused(archive, home, ExitCode.INTEGRITY, "not a caracal backup archive")


def test_total_size_over_the_bound_is_refused(
    sqlite_source: Source, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARACAL_BACKUP_MAX_BYTES", "4096")
    assert_refused(sqlite_source.plain.path, home, ExitCode.INTEGRITY, "over the 4,096-byte limit")


BOMB = 48 * 1024 * 1024  # 48 MiB of zeros: well under 100 KiB compressed


def test_decompression_bomb_declared_in_the_manifest_is_refused_before_reading(
    members: list[Member], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replace_data(members, "flow_state.json", bytes(BOMB), declare=True)
    archive = write_members(tmp_path / "bomb.tar.gz", members)
    assert archive.stat().st_size < 512 * 1024
    monkeypatch.setenv("CARACAL_BACKUP_MAX_BYTES", str(16 * 1024 * 1024))
    assert_refused(archive, home, ExitCode.INTEGRITY, "16,777,216-byte limit")


def test_decompression_bomb_hidden_from_the_manifest_is_refused(
    members: list[Member], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest declares the small original; the member is huge: refused on its tar
    header, without inflating it."""
    replace_data(members, "flow_state.json", bytes(BOMB), declare=False)
    archive = write_members(tmp_path / "hidden-bomb.tar.gz", members)
    monkeypatch.setenv("CARACAL_BACKUP_MAX_BYTES", str(16 * 1024 * 1024))
    assert_refused(archive, home, ExitCode.INTEGRITY, "flow_state.json", "size its manifest says")


def test_oversized_manifest_is_refused(members: list[Member], home: Path, tmp_path: Path) -> None:
    manifest = manifest_of(members)
    manifest["padding"] = " " * (5 * 1024 * 1024)
    set_manifest(members, manifest)
    archive = write_members(tmp_path / "fat-manifest.tar.gz", members)
    assert_refused(archive, home, ExitCode.INTEGRITY, "oversized manifest")


# ---- truncation, flipped bytes, trailing data ------------------------------------------------
GZIP_TRAILER = 8  # CRC-32 and ISIZE of the uncompressed stream


def _cut(size: int, point: str) -> int:
    if point == "half":
        return size // 2
    return size + int(point) if point.startswith("-") else int(point)


TRUNCATIONS = [
    pytest.param(False, "0", id="unlocked-empty"),
    pytest.param(False, "5", id="unlocked-inside-gzip-header"),
    pytest.param(False, "10", id="unlocked-gzip-header-only"),
    pytest.param(False, "300", id="unlocked-inside-manifest"),
    pytest.param(False, "half", id="unlocked-half"),
    pytest.param(False, "-600", id="unlocked-inside-last-tables"),
    pytest.param(False, "-64", id="unlocked-inside-deflate-tail"),
    pytest.param(False, "-8", id="unlocked-whole-gzip-trailer"),
    pytest.param(False, "-4", id="unlocked-half-gzip-trailer"),
    pytest.param(False, "-1", id="unlocked-last-byte"),
    pytest.param(True, "0", id="locked-empty"),
    pytest.param(True, "12", id="locked-inside-magic"),
    pytest.param(True, "40", id="locked-inside-header"),
    pytest.param(True, "half", id="locked-half"),
    pytest.param(True, "-17", id="locked-inside-tag"),
    pytest.param(True, "-1", id="locked-last-byte"),
]


@pytest.mark.parametrize(("locked", "point"), TRUNCATIONS)
def test_truncated_archive_is_refused(
    locked: bool, point: str, damageable: dict[bool, bytes], home: Path, tmp_path: Path
) -> None:
    data = damageable[locked]
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(data[: _cut(len(data), point)])
    assert_broken(archive, home, locked)


def assert_broken(archive: Path, home: Path, locked: bool) -> None:
    """Damage of unknown shape: both commands fail with a clear error (exit 7, or 5 if the
    damage happens to make the archive look like another format version)."""
    extra = LOCK if locked else ()
    verify = cli("backup", "verify", str(archive), *extra, "--json")
    assert verify.code in (ExitCode.INTEGRITY, ExitCode.INVALID), verify
    if verify.code == ExitCode.INTEGRITY:
        assert verify.json()["ok"] is False and verify.json()["problem"], verify
    else:
        assert_clear_error(verify, ExitCode(verify.code))
    restore = cli("backup", "restore", str(archive), "--as", VICTIM, *extra)
    assert restore.code in (ExitCode.INTEGRITY, ExitCode.INVALID), restore
    assert_clear_error(restore, ExitCode(restore.code))
    assert_nothing_left(home, VICTIM)


def _content(data: bytes) -> bytes | None:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


def _flip(data: bytes, offset: int, locked: bool) -> bytes:
    """Invert every bit of the byte at `offset`. Deflate can encode the same content in more
    than one way (a back-reference into a different run of zeros), so for an unlocked archive
    move to the nearest byte whose inversion really changes what the archive holds."""
    original = None if locked else _content(data)
    step = -1 if offset == len(data) - 1 else 1
    while True:
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        if locked or _content(bytes(flipped)) != original:
            return bytes(flipped)
        offset += step


OFFSETS = 30  # spread evenly from the first byte to the last


@pytest.mark.parametrize(
    ("locked", "position"),
    [
        pytest.param(
            locked,
            i,
            id=f"{'locked' if locked else 'unlocked'}-{i}of{OFFSETS - 1}",
        )
        for locked in (False, True)
        for i in range(OFFSETS)
    ],
)
def test_flipped_byte_is_detected(
    locked: bool, position: int, damageable: dict[bool, bytes], home: Path, tmp_path: Path
) -> None:
    data = damageable[locked]
    offset = position * (len(data) - 1) // (OFFSETS - 1)
    archive = tmp_path / "flipped.tar.gz"
    flipped = _flip(data, offset, locked)
    archive.write_bytes(flipped)
    assert_broken(archive, home, locked)


@pytest.mark.parametrize(
    "locked",
    [
        pytest.param(False, id="unlocked"),
        pytest.param(True, id="locked"),
    ],
)
def test_data_after_the_end_is_refused(
    locked: bool, sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    data = sqlite_source.archives[locked].path.read_bytes()
    archive = tmp_path / "extended.tar.gz"
    archive.write_bytes(data + b"#!/bin/sh\necho appended\n")
    assert_broken(archive, home, locked)


def test_content_that_no_longer_matches_the_gzip_checksum_is_refused(
    members: list[Member], sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    """The manifest's own bytes are covered by nothing but gzip's CRC: change its
    `created_at` and keep the original trailer, as a flipped bit inside it would."""
    original = sqlite_source.plain.path.read_bytes()
    manifest = manifest_of(members)
    manifest["created_at"] = "1999-01-01T00:00:00+00:00"
    set_manifest(members, manifest)
    archive = write_members(tmp_path / "stale-crc.tar.gz", members)
    data = archive.read_bytes()
    archive.write_bytes(data[:-GZIP_TRAILER] + original[-GZIP_TRAILER:])
    assert _content(archive.read_bytes()) is None  # gzip itself calls it damaged
    assert_broken(archive, home, locked=False)


# ---- lock keys -------------------------------------------------------------------------------
def test_wrong_lock_key_is_refused(
    sqlite_source: Source, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOCK_ENV, "correct horse battery stapler")
    assert_refused(
        sqlite_source.locked.path, home, ExitCode.INTEGRITY, "wrong lock key", locked=True
    )


BEYOND = "beyond what caracal writes"


@pytest.mark.parametrize(
    ("kdf", "needle"),
    [
        ({"name": "scrypt", "n": 2**19, "r": 8, "p": 1}, BEYOND),  # 512 MiB: accepted before
        ({"name": "scrypt", "n": 2**17, "r": 16, "p": 1}, BEYOND),
        ({"name": "scrypt", "n": 2**17, "r": 8, "p": 4}, BEYOND),
        ({"name": "scrypt", "n": 2**17 + 1, "r": 8, "p": 1}, BEYOND),
        ({"name": "scrypt", "n": 2**17, "r": 8, "p": 1, "maxmem": 1}, "unknown key derivation"),
    ],
    ids=["n-2^19", "r-16", "p-4", "n-not-a-power-of-two", "unknown-field"],
)
def test_hostile_key_derivation_parameters_are_refused_before_deriving(
    sqlite_source: Source, home: Path, tmp_path: Path, kdf: dict[str, Any], needle: str
) -> None:
    """A locked archive's header names its scrypt parameters; up to 4 GiB per derivation was
    accepted. Only what Caracal writes (n = 2^17, r = 8, p = 1) plus a margin of 2x is derived;
    anything else is refused before the key is derived, with the same answer for any lock key."""
    import struct
    import time

    data = sqlite_source.locked.path.read_bytes()
    magic = b"CARACAL-LOCKED-BACKUP\x00v1\n"
    (length,) = struct.unpack(">I", data[len(magic) : len(magic) + 4])
    header = json.loads(data[len(magic) + 4 : len(magic) + 4 + length])
    assert header["kdf"] == {"name": "scrypt", "n": 2**17, "r": 8, "p": 1}
    header["kdf"] = kdf
    assert base64.b64decode(header["salt"])
    raw = json.dumps(header, sort_keys=True).encode()
    rest = data[len(magic) + 4 + length :]
    archive = tmp_path / "hostile-kdf.tar.gz.locked"
    archive.write_bytes(magic + struct.pack(">I", len(raw)) + raw + rest)
    started = time.perf_counter()
    assert_refused(archive, home, ExitCode.INTEGRITY, needle, locked=True)
    assert time.perf_counter() - started < 30


def test_locked_archive_without_a_key_is_refused(sqlite_source: Source, home: Path) -> None:
    assert_refused(sqlite_source.locked.path, home, ExitCode.INVALID, "is locked", "--lock-key-env")


def test_lock_key_variable_that_is_not_set_is_refused(
    sqlite_source: Source, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LOCK_ENV)
    assert_refused(
        sqlite_source.locked.path, home, ExitCode.INVALID, f"{LOCK_ENV} is not set", locked=True
    )


def test_lock_key_shorter_than_12_characters_is_refused_at_create(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("workspace", "create", "demo"))
    before = snapshot("demo").events()
    backups = home / "workspaces" / "demo" / "backups"
    monkeypatch.setenv(LOCK_ENV, "elevenchars")
    assert_clear_error(cli("backup", "create", *LOCK), ExitCode.INVALID, "at least 12 characters")
    assert sorted(backups.iterdir()) == []
    assert snapshot("demo").events() == before  # no backup.created
    monkeypatch.setenv(LOCK_ENV, "twelve-chars")
    created = ok(cli("backup", "create", *LOCK, "--json")).json()
    assert created["locked"] is True and Path(created["path"]).parent == backups


# ---- names -----------------------------------------------------------------------------------
def test_restore_onto_an_existing_name_leaves_it_untouched(
    sqlite_source: Source, home: Path
) -> None:
    ok(cli("workspace", "create", VICTIM))
    ok(cli("principal", "register", "--kind", "human", "--name", "carol"))
    root = home / "workspaces" / VICTIM
    files = {
        p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "logs" not in p.parts
    }
    before = snapshot(VICTIM)
    for archive, extra in ((sqlite_source.plain.path, ()), (sqlite_source.locked.path, LOCK)):
        result = cli("backup", "restore", str(archive), "--as", VICTIM, *extra)
        assert_clear_error(result, ExitCode.CONFLICT, f"{VICTIM!r} already exists")
    assert snapshot(VICTIM).tables == before.tables
    after = {
        p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "logs" not in p.parts
    }
    assert after == files
    assert [p.name for p in (home / "workspaces").iterdir()] == [VICTIM]


def test_restore_of_a_missing_archive_or_under_an_invalid_name(
    sqlite_source: Source, home: Path, tmp_path: Path
) -> None:
    missing = cli("backup", "restore", str(tmp_path / "nope.tar.gz"), "--as", VICTIM)
    assert_clear_error(missing, ExitCode.NOT_FOUND, "does not exist")
    assert_clear_error(
        cli("backup", "verify", str(tmp_path / "nope.tar.gz")), ExitCode.NOT_FOUND, "does not exist"
    )
    for bad in ("Bad/Name", "../escape", "lock"):
        result = cli("backup", "restore", str(sqlite_source.plain.path), "--as", bad)
        assert_clear_error(result, ExitCode.INVALID)
    assert_nothing_left(home, VICTIM)
    assert not (home / "escape").exists()
