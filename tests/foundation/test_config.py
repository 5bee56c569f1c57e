"""`config.yaml` and `caracal config ...`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from caracal.cli.exit_codes import ExitCode
from tests.support.cli import run_cli


@pytest.fixture
def workspace(home: Path) -> Path:
    assert run_cli("workspace", "create", "demo").code == 0
    return home / "workspaces" / "demo"


def test_generated_defaults_are_listed(workspace: Path) -> None:
    items = run_cli("config", "list", "--json").json()
    assert items["workspace"] == {"value": "demo", "template": None}
    assert items["store.url"]["value"] == "sqlite:///store.db"
    assert items["validation.clock_leeway_seconds"]["value"] == 30


def test_set_validates_types_and_writes_atomically(workspace: Path) -> None:
    assert run_cli("config", "set", "validation.clock_leeway_seconds", "5").code == 0
    assert run_cli("config", "get", "validation.clock_leeway_seconds").stdout.strip() == "5"
    before = (workspace / "config.yaml").read_text()
    bad = run_cli("config", "set", "validation.clock_leeway_seconds", "a lot")
    assert bad.code == ExitCode.INVALID and "clock_leeway_seconds" in bad.stderr
    out_of_range = run_cli("config", "set", "runtime.port", "70000")
    assert out_of_range.code == ExitCode.INVALID
    unknown = run_cli("config", "set", "runtime.nope", "1")
    assert unknown.code == ExitCode.INVALID and "runtime.nope" in unknown.stderr
    assert (workspace / "config.yaml").read_text() == before
    assert [p.name for p in workspace.iterdir() if p.name.endswith(".tmp")] == []


def test_unknown_key_in_file_names_file_and_key(workspace: Path) -> None:
    path = workspace / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["store"]["colour"] = "blue"
    path.write_text(yaml.safe_dump(data))
    result = run_cli("provider", "list")
    assert result.code == ExitCode.CONFIG
    assert str(path) in result.stderr and "store.colour" in result.stderr


def test_malformed_yaml_names_the_line(workspace: Path) -> None:
    path = workspace / "config.yaml"
    lines = path.read_text().splitlines()
    lines.insert(3, "  url: [unclosed")
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("config", "list")
    assert result.code == ExitCode.CONFIG
    assert "line " in result.stderr and str(path) in result.stderr


def test_environment_expansion_with_defaults(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = workspace / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["runtime"]["port"] = "${CARACAL_TEST_PORT:9090}"
    data["runtime"]["host"] = "${CARACAL_TEST_HOST}"
    path.write_text(yaml.safe_dump(data))
    missing = run_cli("provider", "list")
    assert missing.code == ExitCode.CONFIG and "CARACAL_TEST_HOST" in missing.stderr
    monkeypatch.setenv("CARACAL_TEST_HOST", "0.0.0.0")
    from caracal.services.facade import Caracal

    with Caracal.open() as caracal:
        assert caracal.config.runtime.port == 9090 and caracal.config.runtime.host == "0.0.0.0"
    monkeypatch.setenv("CARACAL_TEST_PORT", "7070")
    with Caracal.open() as caracal:
        assert caracal.config.runtime.port == 7070
    # `config set` elsewhere keeps the references written in the file.
    assert run_cli("config", "set", "logging.level", "DEBUG").code == 0
    assert "${CARACAL_TEST_PORT:9090}" in path.read_text()
    # `config get/list` show the value in effect, and the template it comes from.
    got = run_cli("config", "get", "runtime.port")
    assert got.stdout.strip() == "7070" and "${CARACAL_TEST_PORT:9090}" in got.stderr
    assert run_cli("config", "get", "runtime.port", "--json").json() == 7070
    listed = run_cli("config", "list", "--json").json()
    assert listed["runtime.port"] == {"value": 7070, "template": "${CARACAL_TEST_PORT:9090}"}
    assert listed["runtime.host"] == {"value": "0.0.0.0", "template": "${CARACAL_TEST_HOST}"}
    table = run_cli("config", "list").stdout
    row = next(line for line in table.splitlines() if line.startswith("runtime.port "))
    assert row.split() == ["runtime.port", "7070", "${CARACAL_TEST_PORT:9090}"]
    monkeypatch.delenv("CARACAL_TEST_PORT")
    assert run_cli("config", "get", "runtime.port").stdout.strip() == "9090"


def test_a_secret_from_the_environment_is_masked_in_effect(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = workspace / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["runtime"]["redis_url"] = "redis://:${CARACAL_TEST_REDIS_PASSWORD}@127.0.0.1:6379/0"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("CARACAL_TEST_REDIS_PASSWORD", "env-s3cret")
    listed = run_cli("config", "list", "--json")
    assert "env-s3cret" not in listed.stdout, listed
    entry = listed.json()["runtime.redis_url"]
    assert entry["value"] == "redis://:********@127.0.0.1:6379/0"
    assert entry["template"] == "redis://:${CARACAL_TEST_REDIS_PASSWORD}@127.0.0.1:6379/0"
    revealed = run_cli("config", "get", "runtime.redis_url", "--reveal").stdout.strip()
    assert revealed == "redis://:env-s3cret@127.0.0.1:6379/0"


def test_secrets_are_encrypted_masked_and_revealed_on_request(workspace: Path) -> None:
    url = "redis://:s3cret-redis-pass@127.0.0.1:6379/0"
    assert run_cli("config", "set", "runtime.redis_url", "--stdin", input=url + "\n").code == 0
    raw = (workspace / "config.yaml").read_text()
    assert "s3cret-redis-pass" not in raw and "ENC[" in raw
    assert (
        run_cli("config", "get", "runtime.redis_url").stdout.strip()
        == "redis://:********@127.0.0.1:6379/0"
    )
    assert "s3cret" not in run_cli("config", "list").stdout
    assert run_cli("config", "get", "runtime.redis_url", "--reveal").stdout.strip() == url
    from caracal.services.facade import Caracal

    with Caracal.open() as caracal:
        assert caracal.config.runtime.redis_url == url


def test_encrypt_prints_a_value_that_decrypts_in_config(workspace: Path) -> None:
    result = run_cli("config", "encrypt", input="postgres-password\n")
    assert result.code == 0 and result.stdout.startswith("ENC[")
    path = workspace / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["runtime"]["redis_url"] = result.stdout.strip()
    path.write_text(yaml.safe_dump(data))
    assert (
        run_cli("config", "get", "runtime.redis_url", "--reveal").stdout.strip()
        == "postgres-password"
    )
    assert run_cli("config", "encrypt", input="").code == ExitCode.INVALID


def test_url_secrets_mask_only_the_password(workspace: Path) -> None:
    # Written by hand (sealed with `config encrypt`): the store now points at an unreachable
    # database; config commands still work.
    # A password no random ciphertext spells by chance ("pw" did, once in a while).
    secret = "s3cret-Pass-9f"
    sealed = run_cli("config", "encrypt", input=f"postgresql+psycopg://u:{secret}@h/db\n").stdout
    path = workspace / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["store"].update(url=sealed.strip(), pg_schema="ws_demo")
    path.write_text(yaml.safe_dump(data))
    assert secret not in path.read_text()
    shown = run_cli("config", "get", "store.url").stdout.strip()
    assert shown == "postgresql+psycopg://u:********@h/db"
    revealed = run_cli("config", "get", "store.url", "--reveal").stdout.strip()
    assert revealed.endswith(f"u:{secret}@h/db")


def test_store_url_is_refused_unless_it_holds_this_workspace(workspace: Path, home: Path) -> None:
    """`config set store.url` used to accept any URL, leaving the workspace pointing at an
    empty, unreachable or foreign store."""
    config = workspace / "config.yaml"
    before = config.read_text()
    assert run_cli("principal", "register", "--kind", "human", "--name", "ada").code == 0
    assert run_cli("workspace", "create", "other").code == 0
    other = home / "workspaces" / "other" / "store.db"
    missing = run_cli("config", "set", "store.url", "sqlite:///elsewhere.db")
    assert missing.code == ExitCode.NOT_FOUND and "Not saved" in missing.stderr, missing
    foreign = run_cli("config", "set", "store.url", f"sqlite:///{other}")
    assert foreign.code == ExitCode.INVALID, foreign
    assert "another workspace" in foreign.stderr and "restore" in foreign.stderr
    assert run_cli("config", "set", "store.pg_schema", "ws_nowhere").code == 0
    before = config.read_text()
    unreachable = run_cli(
        "config", "set", "store.url", "--stdin", input="postgresql+psycopg://u:pw@127.0.0.1:1/db"
    )
    assert unreachable.code == ExitCode.UNAVAILABLE, unreachable
    assert "Not saved" in unreachable.stderr and "reach" in unreachable.stderr
    assert ":pw@" not in unreachable.stderr
    assert config.read_text() == before
    # A copy of this workspace's own store is a valid new location.
    moved = workspace.parent.parent / "moved.db"
    moved.write_bytes((workspace / "store.db").read_bytes())
    assert run_cli("config", "set", "store.url", f"sqlite:///{moved}").code == 0
    assert [p["name"] for p in run_cli("principal", "list", "--json").json()] == ["ada"]


# ---- issue 13 ------------------------------------------------------------------------------
def test_read_only_keys_are_refused_by_every_front_end(workspace: Path) -> None:
    """The facade knows which keys are read-only; `config set` used to change them."""
    for key, value in (("workspace", "other"), ("version", "99"), ("created_at", "x")):
        result = run_cli("config", "set", key, value)
        assert result.code == ExitCode.INVALID and "read-only" in result.stderr, (key, result)
    data = yaml.safe_load((workspace / "config.yaml").read_text())
    assert data["workspace"] == "demo" and data["version"] == 1


def test_a_password_in_a_url_query_is_masked_wherever_it_is_shown(workspace: Path) -> None:
    path = workspace / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["runtime"]["redis_url"] = "redis://127.0.0.1:6399/0?password=hunter2-by-hand"
    path.write_text(yaml.safe_dump(data))
    shown = run_cli("config", "get", "runtime.redis_url").stdout
    listed = run_cli("config", "list", "--json").stdout
    section = run_cli("config", "get", "runtime", "--json").stdout
    for text in (shown, listed, section):
        assert "hunter2" not in text and "password=********" in text, text
    revealed = run_cli("config", "get", "runtime.redis_url", "--reveal").stdout
    assert "hunter2-by-hand" in revealed
    # Entered through `config set`, it is sealed in the file too.
    ok = run_cli("config", "set", "runtime.redis_url", "--stdin", input="redis://h/0?password=pw2")
    assert ok.code == 0 and "pw2" not in ok.stdout
    assert "pw2" not in path.read_text() and "ENC[" in path.read_text()


@pytest.mark.postgres
def test_a_store_password_is_sealed_however_it_enters(home: Path, pg_url: str) -> None:
    """`workspace create --store-url` (and CARACAL_STORE_URL) wrote the password in clear into
    config.yaml, and from there into every unlocked backup."""
    import gzip
    import os
    import secrets

    secret = "pw" + secrets.token_hex(8)
    url = pg_url.replace("postgres@", f"postgres:{secret}@", 1)
    created = run_cli("workspace", "create", "demo", "--store-url", url)
    assert created.code == 0, created
    config = home / "workspaces" / "demo" / "config.yaml"
    assert secret not in config.read_text() and "ENC[" in config.read_text()
    assert run_cli("principal", "register", "--kind", "human", "--name", "alice").code == 0
    assert "PostgreSQL" in run_cli("workspace", "list").stdout
    shown = run_cli("config", "get", "store.url").stdout
    assert secret not in shown and "postgres:********@" in shown
    backup = run_cli("backup", "create", "--json")
    assert backup.code == 0, backup
    archive = Path(backup.json()["path"]).read_bytes()
    assert secret.encode() not in gzip.decompress(archive)
    # From the environment, the same.
    os.environ["CARACAL_STORE_URL"] = url
    try:
        assert run_cli("workspace", "create", "second").code == 0
    finally:
        del os.environ["CARACAL_STORE_URL"]
    second = home / "workspaces" / "second" / "config.yaml"
    assert secret not in second.read_text()
    # A sealed store URL still lets the workspace be found and deleted.
    deleted = run_cli("workspace", "delete", "second", "--yes", "--no-backup")
    assert deleted.code == 0, deleted
    for path in home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
