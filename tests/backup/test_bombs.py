"""Archives built to cost memory or time: a huge PAX header, a table dump with one enormous
line, rows and a manifest nested 100,000 deep. Each is refused by a real `caracal backup
verify` process with a clear error, in under 2 s of CPU and well under 200 MB."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.backup.conftest import (
    TRUSTED,
    Member,
    Source,
    manifest_of,
    read_members,
    replace_data,
    set_manifest,
    write_members,
)
from tests.support.runtime import ROOT

pytestmark = pytest.mark.timeout(300)

DEEP = 100_000
_MEASURE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(done.stderr)\n"
    "sys.stdout.write(done.stdout)\n"
    "print(f'\\nMEASURED {use.ru_utime + use.ru_stime:.3f} {use.ru_maxrss / 1024:.1f}')\n"
    "sys.exit(done.returncode)\n"
)


def verify_measured(archive: Path) -> tuple[int, str, float, float]:
    """`caracal backup verify --json` in its own process: exit code, output (stdout and
    stderr), CPU seconds and peak RSS in MB."""
    env = {**os.environ, "CARACAL_TRUST_KEY": " ".join(sorted(TRUSTED))}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "caracal", "backup", "verify",
         str(archive), "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    body, _, figures = done.stdout.rpartition("\nMEASURED ")
    cpu, rss = (float(x) for x in figures.split())
    print(f"\nBOMB {archive.name}: {cpu:.2f} s CPU, {rss:.0f} MB peak")
    return done.returncode, body + done.stderr, cpu, rss


def assert_refused_cheaply(archive: Path, *needles: str) -> None:
    code, output, cpu, rss = verify_measured(archive)
    assert code == int(ExitCode.INTEGRITY), output
    for needle in needles:
        assert needle.lower() in output.lower(), output
    assert "internal error" not in output.lower(), output
    assert cpu < 2.0, f"{cpu:.2f} s of CPU"
    assert rss < 200, f"{rss:.0f} MB"


@pytest.fixture
def members(sqlite_source: Source) -> list[Member]:
    return read_members(sqlite_source.plain.path)


def test_a_huge_pax_header_is_refused_before_it_is_read(
    sqlite_source: Source, tmp_path: Path
) -> None:
    """512 MiB of PAX header (a few hundred KB compressed) in front of a valid archive: it was
    read whole, and the archive then verified as intact."""
    size = 512 * 1024 * 1024
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size, header.mtime = tarfile.XHDTYPE, size, 0
    with gzip.open(sqlite_source.plain.path, "rb") as original:
        rest = original.read()
    archive = tmp_path / "pax-bomb.tar.gz"
    with (
        archive.open("xb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0, filename="") as gz,
    ):
        gz.write(header.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
        zeros = bytes(1024 * 1024)
        for _ in range(size // len(zeros)):
            gz.write(zeros)
        gz.write(rest)
    assert archive.stat().st_size < 4 * 1024 * 1024
    assert_refused_cheaply(archive, "extended tar header")


def test_a_table_dump_with_one_enormous_line_is_refused(
    members: list[Member], tmp_path: Path
) -> None:
    name = next(m.name for m in members if m.name.startswith("tables/"))
    header = members[[m.name for m in members].index(name)].data.split(b"\n", 1)[0]
    line = b'["' + b"a" * (100 * 1024 * 1024) + b'"]\n'
    replace_data(members, name, header + b"\n" + line, declare=True)
    archive = write_members(tmp_path / "long-line.tar.gz", members)
    assert_refused_cheaply(archive, "line over")


def test_a_row_nested_100000_deep_is_a_clear_refusal(members: list[Member], tmp_path: Path) -> None:
    name = next(m.name for m in members if m.name.startswith("tables/"))
    header = members[[m.name for m in members].index(name)].data.split(b"\n", 1)[0]
    row = b"[" * DEEP + b"]" * DEEP + b"\n"
    replace_data(members, name, header + b"\n" + row, declare=True)
    archive = write_members(tmp_path / "deep-row.tar.gz", members)
    assert_refused_cheaply(archive, "nested too deeply")


def test_a_manifest_nested_100000_deep_is_a_clear_refusal(
    members: list[Member], tmp_path: Path
) -> None:
    manifest = manifest_of(members)
    set_manifest(members, manifest)
    deep = json.dumps(manifest)[:-1] + ',"x":' + "[" * DEEP + "]" * DEEP + "}"
    members[0] = Member(members[0].info, deep.encode())
    members[0].info.size = len(members[0].data)
    archive = write_members(tmp_path / "deep-manifest.tar.gz", members)
    assert_refused_cheaply(archive, "damaged manifest")
