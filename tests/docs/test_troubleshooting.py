"""The troubleshooting page shows every error a user can meet on the way, as the code prints
it. Each test provokes the error for real where that is cheap (the CLI in process on a
temporary CARACAL_HOME, the launcher's functions with a stand-in Docker client), and checks
that the page quotes it; `<...>` on the page stands for the part that varies."""

from __future__ import annotations

import io
import re
import shutil
import socket
import sqlite3
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from caracal.core.errors import CaracalError
from tests.docs.sessions import DOCS
from tests.support.cli import Result, run_cli

PAGE = DOCS / "troubleshooting.md"
BLOCK = re.compile(r"^```(?:text|sh)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _spaced(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip())


def _documented() -> list[re.Pattern[str]]:
    patterns = []
    for block in BLOCK.finditer(PAGE.read_text()):
        for line in block.group(1).splitlines():
            if line.strip():
                parts = re.split(r"<[^<>]+>", _spaced(line))
                patterns.append(re.compile(".+".join(re.escape(p) for p in parts)))
    return patterns


def assert_shown(message: str) -> None:
    """The message, one line as printed, is quoted on the page."""
    wanted = _spaced(message)
    assert any(p.fullmatch(wanted) for p in _documented()), (
        f"docs/troubleshooting.md does not quote this message:\n{message}"
    )


def assert_on_page(text: str) -> None:
    assert _spaced(text) in _spaced(PAGE.read_text()), f"docs/troubleshooting.md lacks {text!r}"


def error_line(result: Result, code: int) -> str:
    assert result.code == code, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result
    return lines[0]


# ---- Docker -----------------------------------------------------------------------------------


def test_no_docker_engine(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from caracal.launcher.engine import NO_ENGINE

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    for command in ("status", "logs", "down"):
        assert_shown(error_line(run_cli(command), 8))
    assert_shown("error: " + NO_ENGINE.format(where=""))


def test_doctor_says_what_is_wrong_with_the_engine() -> None:
    from caracal.launcher.doctor import engine_finding

    for cause in (FileNotFoundError(), PermissionError(), ConnectionRefusedError()):
        error = CaracalError("no engine")
        error.__cause__ = cause
        finding = engine_finding(error)
        assert_on_page(finding.detail)
        assert_on_page(finding.next_step)


def test_a_port_taken_by_another_program() -> None:
    from caracal.launcher.doctor import _ports

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        service = SimpleNamespace(
            name="runtime", ports=[SimpleNamespace(host_ip="127.0.0.1", host_port=port)]
        )
        launcher = SimpleNamespace(
            stack=SimpleNamespace(active=lambda: [service]), container=lambda name: None
        )
        [finding] = _ports(launcher)  # type: ignore[arg-type]
    assert not finding.ok
    assert_on_page(finding.detail)
    assert_on_page(finding.next_step)


def test_up_says_which_port_is_taken() -> None:
    from docker.errors import APIError

    from caracal.launcher.containers import start_failure

    service = SimpleNamespace(
        name="runtime", ports=[SimpleNamespace(host_ip="127.0.0.1", host_port=8080)]
    )
    for reason in (
        "driver failed programming external connectivity on endpoint caracal-runtime-1: "
        "Bind for 127.0.0.1:8080 failed: port is already allocated",
        "failed to bind port 127.0.0.1:8080/tcp: listen tcp4 127.0.0.1:8080: bind: address "
        "already in use",
    ):
        error = start_failure(service, APIError("500 Server Error", explanation=reason))  # type: ignore[arg-type]
        assert "CARACAL_RUNTIME_PORT" in error.message
        assert_shown("error: " + error.message)
    other = start_failure(service, APIError("500", explanation="no space left on device"))  # type: ignore[arg-type]
    assert_shown("error: " + other.message)


class _NoRegistry:
    """A Docker client whose registry cannot be reached and which has no image."""

    def __init__(self, answer: list[dict[str, Any]]) -> None:
        from docker.errors import ImageNotFound

        def missing(ref: str) -> None:
            raise ImageNotFound(ref)

        self.api = SimpleNamespace(pull=lambda *a, **k: iter(answer))
        self.images = SimpleNamespace(get=missing)


def test_an_image_missing_without_a_registry() -> None:
    from caracal.launcher.doctor import _images
    from caracal.launcher.images import pull
    from caracal.launcher.watch import Unwatched

    for answer in ([{"error": "dial tcp: lookup registry-1.docker.io: no such host"}], []):
        launcher = SimpleNamespace(
            client=_NoRegistry(answer), say=lambda text: None, watch=Unwatched()
        )
        with pytest.raises(CaracalError) as caught:
            pull(launcher, "postgres:16-alpine")  # type: ignore[arg-type]
        assert_shown("error: " + caught.value.message)

    service = SimpleNamespace(image="postgres:16-alpine", build=None)
    launcher = SimpleNamespace(
        client=_NoRegistry([]), stack=SimpleNamespace(active=lambda: [service])
    )
    [finding] = _images(launcher)  # type: ignore[arg-type]
    assert_on_page(finding.detail)
    assert_on_page(finding.next_step)


def test_logs_before_the_stack_exists() -> None:
    from caracal.launcher.logs import show_logs

    services = dict.fromkeys(("postgres", "redis", "runtime", "flow", "cli"))
    launcher = SimpleNamespace(
        stack=SimpleNamespace(services=services), container=lambda name: None
    )
    for services in ([], ["nope"]):
        with pytest.raises(CaracalError) as caught:
            show_logs(launcher, services, follow=False, tail=None)  # type: ignore[arg-type]
        assert_shown("error: " + caught.value.message)


# ---- master key -------------------------------------------------------------------------------


def test_a_master_key_mismatch(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARACAL_MASTER_KEY", "11" * 32)
    assert run_cli("workspace", "create", "demo").code == 0
    monkeypatch.setenv("CARACAL_MASTER_KEY", "22" * 32)
    assert_shown(error_line(run_cli("principal", "list"), 10))


def test_every_master_key_source_is_named() -> None:
    from caracal.vault.master_key import MasterKeySource

    for source in MasterKeySource:
        assert_on_page(f"`{source.value}`")


def test_a_missing_master_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    monkeypatch.setenv("CARACAL_MASTER_KEY_FILE", str(home / "nowhere.key"))
    assert_shown(error_line(run_cli("principal", "list"), 10))
    monkeypatch.delenv("CARACAL_MASTER_KEY_FILE")
    (home / "workspaces" / "demo" / "keys" / "master.key").unlink()
    assert_shown(error_line(run_cli("principal", "list"), 10))


# ---- PostgreSQL and Redis ---------------------------------------------------------------------


def test_postgresql_unreachable(home: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"
    assert_shown(error_line(run_cli("workspace", "create", "demo", "--store-url", url), 8))


def test_an_open_store_that_does_not_answer_is_quoted() -> None:
    # Reaching it needs a PostgreSQL that stops mid-way; the sentence is read from the code.
    source = (Path(__file__).resolve().parents[2] / "caracal" / "store" / "engine.py").read_text()
    assert 'f"Cannot reach the {self.location.describe()} store: {_first_line(exc.orig)}; "' in (
        source
    )
    assert_shown(
        "error: Cannot reach the PostgreSQL store: connection refused; check that the "
        "database is running."
    )


def test_redis_unreachable() -> None:
    from caracal.server.health import check_redis

    check = check_redis("redis://127.0.0.1:1/0", timeout=0.5)
    assert check is not None and not check.ok
    assert_on_page(check.detail)
    for detail in ("unreachable (timed out)", "authentication refused", "unexpected answer"):
        assert_on_page(detail)


# ---- the ledger -------------------------------------------------------------------------------


def _store_files(workspace: Path) -> list[Path]:
    return [p for p in workspace.iterdir() if p.name.startswith("store.db")]


def test_a_rolled_back_ledger(home: Path, tmp_path: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    assert run_cli("principal", "register", "--kind", "human", "--name", "alice").code == 0
    workspace = home / "workspaces" / "demo"
    saved = tmp_path / "saved"
    saved.mkdir()
    for file in _store_files(workspace):
        shutil.copy2(file, saved / file.name)
    assert run_cli("principal", "register", "--kind", "human", "--name", "bob").code == 0
    for file in _store_files(workspace):
        file.unlink()
    for file in saved.iterdir():
        shutil.copy2(file, workspace / file.name)
    assert_shown(error_line(run_cli("principal", "list"), 7))


def test_a_tampered_ledger(home: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    assert run_cli("principal", "register", "--kind", "human", "--name", "alice").code == 0
    store = home / "workspaces" / "demo" / "store.db"

    def tamper(sql: str) -> None:
        with sqlite3.connect(store) as conn:
            conn.execute(sql)

    tamper("UPDATE principals SET name = 'mallory' WHERE name = 'alice'")
    result = run_cli("ledger", "verify")
    assert result.code == 7, result
    assert_shown(result.stdout.splitlines()[0])

    tamper("UPDATE principals SET name = 'alice' WHERE name = 'mallory'")
    tamper("UPDATE ledger_events SET actor = 'mallory' WHERE seq = 2")
    result = run_cli("ledger", "verify")
    assert result.code == 7, result
    assert_shown(result.stdout.splitlines()[0])


# ---- archives ---------------------------------------------------------------------------------


@pytest.fixture
def archive(home: Path, tmp_path: Path) -> Path:
    assert run_cli("workspace", "create", "demo").code == 0
    assert run_cli("principal", "register", "--kind", "human", "--name", "alice").code == 0
    path = tmp_path / "demo.tar.gz"
    assert run_cli("backup", "create", "--output", str(path)).code == 0
    return path


def test_refused_archives(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not an archive\n")
    assert_shown(error_line(run_cli("backup", "restore", str(junk), "--as", "x"), 7))

    damaged = tmp_path / "damaged.tar.gz"
    data = archive.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    result = run_cli("backup", "verify", str(damaged))
    assert result.code == 7, result
    assert_shown(next(line for line in result.stderr.splitlines() if "BROKEN" in line))
    assert_shown(error_line(run_cli("backup", "restore", str(damaged), "--as", "x"), 7))

    unsafe = tmp_path / "unsafe.tar.gz"
    with tarfile.open(unsafe, "w:gz") as tar:
        member = tarfile.TarInfo("../escape")
        member.size = 2
        tar.addfile(member, io.BytesIO(b"hi"))
    assert_shown(error_line(run_cli("backup", "restore", str(unsafe), "--as", "x"), 7))

    monkeypatch.setenv("CARACAL_HOME", str(tmp_path / "elsewhere"))
    assert_shown(error_line(run_cli("backup", "restore", str(archive), "--as", "x"), 7))
    other = "sha256:" + "ab" * 32
    restore = ("backup", "restore", str(archive), "--as", "x", "--trust-key", other)
    assert_shown(error_line(run_cli(*restore), 7))


def test_locked_archives(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    monkeypatch.setenv("LOCK_KEY", "correct horse battery staple")
    monkeypatch.setenv("WRONG_KEY", "incorrect horse battery staple")
    locked = tmp_path / "locked.tar.gz"
    create = ("backup", "create", "--output", str(locked), "--lock-key-env", "LOCK_KEY")
    assert run_cli(*create).code == 0
    assert_shown(error_line(run_cli("backup", "restore", str(locked), "--as", "x"), 5))
    wrong = ("backup", "restore", str(locked), "--as", "x", "--lock-key-env", "WRONG_KEY")
    assert_shown(error_line(run_cli(*wrong), 7))


# ---- decisions --------------------------------------------------------------------------------


def test_every_reason_code_has_a_fix_on_the_page() -> None:
    from caracal.core.reasons import ISSUANCE_REFUSALS, VALIDATION_DENIALS

    rows = {
        m.group(1) for m in re.finditer(r"^\| `([A-Z_]+)` \| \S", PAGE.read_text(), re.MULTILINE)
    }
    codes = {*VALIDATION_DENIALS, *ISSUANCE_REFUSALS, "RATE_LIMITED"}
    assert codes <= rows, f"no fix on the page for {sorted(codes - rows)}"


def test_a_denied_decision_prints_its_reason_code(home: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    result = run_cli(
        "mandate",
        "validate",
        "--token",
        "not-a-token",
        "--action",
        "provider:x:action:y",
        "--resource",
        "provider:x:resource:z",
    )
    assert result.code == 6, result
    assert "TOKEN_MALFORMED" in result.stdout + result.stderr
