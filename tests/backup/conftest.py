"""Shared set-up for the backup tests.

- `sources`: a realistic workspace per backend (provider with a credential, principals of every
  kind, policies, issued, delegated and revoked mandates, allowed and denied validations, a
  rotated key, a suspended principal, an encrypted config value), built once per test session
  through the real CLI and backed up both unlocked and locked. Tests only read it: they restore
  its archives into their own `home`.
- table snapshots read through `Caracal.open(name)` and `app.store.read()`;
- helpers that rewrite an archive member by member (for hostile input);
- the checks that a failed restore left nothing behind.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from caracal.cli.exit_codes import ExitCode
from caracal.store import schema
from tests.conftest import _require_postgres
from tests.support.cli import Result, run_cli
from tests.support.postgres import scratch_database

LOCK_ENV = "CARACAL_TEST_LOCK_KEY"
LOCK_KEY = "correct horse battery staple"
GH_ENV = "CARACAL_TEST_GH_TOKEN"
GH_TOKEN = "ghp_0123456789abcdef-not-a-real-token"
REDIS_URL = "redis://:hunter2@cache.internal:6379/0"

READ = "provider:github:action:read"
WRITE = "provider:github:action:write"
COMMENT = "provider:github:action:comment"
REPOS = "provider:github:resource:repos"
ISSUES = "provider:github:resource:issues"

# (action, resource, caller): every mandate of the source is validated against each of these,
# before the backup and again after the restore, and must get the same decision.
CHECKS: tuple[tuple[str, str, str | None], ...] = (
    (READ, REPOS, None),
    (WRITE, REPOS, None),
    (COMMENT, ISSUES, None),
    (READ, ISSUES, None),
    (READ, REPOS, "w1"),
)


# ---- small CLI helpers ---------------------------------------------------------------------
def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


# The source workspaces live in another home, like an archive brought from elsewhere: their
# archives are trusted by fingerprint (`--trust-key`, through CARACAL_TRUST_KEY), and a test
# that rewrites a manifest re-signs it with the source's ledger key, as someone holding that
# key could (what is tested then is everything behind the signature).
TRUSTED: set[str] = set()
SIGNERS: dict[str, tuple[str, Any, str]] = {}  # workspace id -> (kid, private key, fingerprint)


def cli(*args: str, workspace: str | None = None, input: str = "", trusting: bool = True) -> Result:
    prefix = ("--workspace", workspace) if workspace else ()
    with pytest.MonkeyPatch.context() as mp:
        if trusting and TRUSTED:
            mp.setenv("CARACAL_TRUST_KEY", " ".join(sorted(TRUSTED)))
        else:
            mp.delenv("CARACAL_TRUST_KEY", raising=False)
        return run_cli(*prefix, *args, input=input)


def assert_clear_error(result: Result, code: ExitCode, *needles: str) -> str:
    """Exit code from the enum, and exactly one `error: ...` line naming the problem."""
    assert result.code == int(code), result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    if lines[0].startswith("{"):  # with --json: one JSON object
        body = json.loads(lines[0])
        assert body["exit_code"] == int(code), result
        lines = [f"error: {body['message']}"]
    assert lines[0].startswith("error: "), result
    for needle in needles:
        assert needle.lower() in lines[0].lower(), result
    return lines[0]


def validate(
    mandate: str, action: str, resource: str, caller: str | None, workspace: str | None = None
) -> tuple[bool, str]:
    extra = ("--caller", caller) if caller else ()
    result = cli(
        "mandate",
        "validate",
        mandate,
        "--action",
        action,
        "--resource",
        resource,
        "--json",
        *extra,
        workspace=workspace,
    )
    assert result.code in (ExitCode.OK, ExitCode.DENIED), result
    data = result.json()
    assert data["allowed"] == (result.code == ExitCode.OK), result
    return data["allowed"], data["reason_code"]


def decisions(
    mandates: dict[str, str], workspace: str | None = None
) -> dict[tuple[str, str, str, str | None], tuple[bool, str]]:
    return {
        (label, action, resource, caller): validate(
            mandate, action, resource, caller, workspace=workspace
        )
        for label, mandate in sorted(mandates.items())
        for action, resource, caller in CHECKS
    }


# ---- isolated homes ------------------------------------------------------------------------
@contextlib.contextmanager
def isolated_home(root: Path) -> Iterator[Path]:
    """Point CARACAL_HOME at `root` for the duration (the same isolation as `home`)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARACAL_HOME", str(root))
        mp.setenv("CARACAL_KEYRING", "off")
        mp.setenv(LOCK_ENV, LOCK_KEY)
        mp.setenv(GH_ENV, GH_TOKEN)
        for var in (
            "CARACAL_WORKSPACE",
            "CARACAL_STORE_URL",
            "CARACAL_MASTER_KEY",
            "CARACAL_MASTER_KEY_FILE",
            "CARACAL_BACKUP_MAX_BYTES",
        ):
            mp.delenv(var, raising=False)
        yield root


@pytest.fixture(autouse=True)
def _backup_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_ENV, LOCK_KEY)
    monkeypatch.setenv(GH_ENV, GH_TOKEN)
    monkeypatch.delenv("CARACAL_BACKUP_MAX_BYTES", raising=False)


# ---- store snapshots -----------------------------------------------------------------------
def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, bytes | memoryview) else value


@dataclass
class Snapshot:
    tables: dict[str, list[dict[str, Any]]]
    secrets: dict[str, tuple[str, bytes, float]]  # ref -> (kind, plaintext, created_at)

    def events(self) -> list[dict[str, Any]]:
        return self.tables["ledger_events"]


def snapshot(name: str) -> Snapshot:
    """Every table of workspace `name`, row for row, plus its secrets decrypted."""
    from caracal.services.facade import Caracal

    with Caracal.open(name) as app, app.store.read() as conn:
        tables: dict[str, list[dict[str, Any]]] = {}
        for table in schema.metadata.sorted_tables:
            key = [c.name for c in table.primary_key.columns]
            rows = [
                {k: _plain(v) for k, v in row._mapping.items()}
                for row in conn.execute(select(table))
            ]
            rows.sort(key=lambda r, key=key: tuple(r[c] for c in key))
            tables[table.name] = rows
        secrets = {
            row["ref"]: (row["kind"], app.vault.get(conn, row["ref"]), row["created_at"])
            for row in tables["secrets"]
        }
    return Snapshot(tables, secrets)


# ---- the source workspace ------------------------------------------------------------------
@dataclass
class Archive:
    path: Path
    locked: bool
    head_seq: int  # the ledger head the archive holds ...
    head_hash: str  # ... as the source saw it when the backup was written
    created: dict[str, Any]  # `backup create --json`
    snapshot: Snapshot  # the source right after the backup


@dataclass
class Source:
    backend: str
    name: str
    store_url: str | None
    ids: dict[str, str]
    mandates: dict[str, str]
    decisions: dict[tuple[str, str, str, str | None], tuple[bool, str]]
    archives: dict[bool, Archive] = field(default_factory=dict)  # locked? -> archive

    @property
    def plain(self) -> Archive:
        return self.archives[False]

    @property
    def locked(self) -> Archive:
        return self.archives[True]


def _issue(
    issuer: str,
    subject: str,
    actions: tuple[str, ...],
    resources: tuple[str, ...],
    depth: int = 0,
    ttl: str = "30m",
) -> str:
    args = ["mandate", "issue", "--issuer", issuer, "--subject", subject, "--ttl", ttl]
    args += ["--delegation-depth", str(depth), "--json"]
    for scope in resources:
        args += ["--resource", scope]
    for scope in actions:
        args += ["--action", scope]
    return ok(run_cli(*args)).json()["id"]


def _delegate(
    source: str, subject: str, actions: tuple[str, ...], resources: tuple[str, ...]
) -> str:
    args = ["mandate", "delegate", source, "--subject", subject, "--ttl", "20m", "--json"]
    for scope in resources:
        args += ["--resource", scope]
    for scope in actions:
        args += ["--action", scope]
    return ok(run_cli(*args)).json()["id"]


def _policy(name: str, *extra: str) -> None:
    ok(
        run_cli(
            "policy",
            "create",
            "--principal",
            name,
            "--max-validity",
            "1h",
            "--resource",
            "provider:github:resource:*",
            "--action",
            "provider:github:action:*",
            "--delegation-depth",
            "3",
            *extra,
        )
    )


def build_world(store_url: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The realistic workspace `src`, made active; returns (principal ids, mandate ids)."""
    ok(run_cli("workspace", "create", "src", *(("--store-url", store_url) if store_url else ())))
    ok(run_cli("config", "set", "ledger.checkpoint_every", "10"))  # several signed checkpoints
    ok(run_cli("config", "set", "runtime.redis_url", REDIS_URL))  # stored encrypted
    ok(
        run_cli(
            "provider",
            "add",
            "github",
            "--base-url",
            "https://api.github.com",
            "--auth",
            "bearer",
            "--credential-env",
            GH_ENV,
            "--resource",
            "repos=Repositories",
            "--resource",
            "issues",
            "--action",
            "repos:read:GET:/repos",
            "--action",
            "repos:write",
            "--action",
            "issues:comment",
        )
    )
    ok(run_cli("provider", "add", "docs", "--base-url", "https://docs.example.com/v1"))
    ids: dict[str, str] = {}
    for kind, name in [
        ("human", "alice"),
        ("orchestrator", "orch"),
        ("orchestrator", "orch2"),
        ("worker", "w1"),
        ("worker", "w2"),
        ("service", "svc"),
        ("service", "bot"),
    ]:
        extra = ("--email", "alice@example.com") if name == "alice" else ()
        ids[name] = ok(
            run_cli("principal", "register", "--kind", kind, "--name", name, *extra)
        ).stdout.strip()
    for name in ("orch", "orch2", "w1", "w2", "svc", "bot"):
        _policy(name)
    _policy("w1", "--replace")  # w1's first policy becomes inactive

    m: dict[str, str] = {}
    m["root"] = _issue("alice", "orch", (READ, WRITE), (REPOS,), depth=2)
    m["child"] = _delegate(m["root"], "w1", (READ,), (REPOS,))
    m["comment"] = _issue("alice", "w2", (COMMENT,), (ISSUES,))
    m["revoked"] = _issue("alice", "orch2", (READ, WRITE), (REPOS,), depth=1)
    m["revoked_child"] = _delegate(m["revoked"], "w2", (READ,), (REPOS,))
    ok(run_cli("mandate", "revoke", m["revoked"], "--reason", "lost laptop", "--yes"))
    m["svc"] = _issue("alice", "svc", (READ, COMMENT), (REPOS, ISSUES))
    m["bot"] = _issue("alice", "bot", (READ,), (REPOS,))
    ok(run_cli("principal", "suspend", "bot", "--yes"))
    ok(run_cli("principal", "rotate-key", "orch"))  # `child` was signed with the old key
    m["after_rotation"] = _delegate(m["root"], "w2", (READ, WRITE), (REPOS,))
    ok(run_cli("ledger", "checkpoint"))
    policies = ok(run_cli("policy", "list", "--json")).json()
    svc_policy = next(
        p for p in policies if p["principal_id"] == ids["svc"] and p["status"] == "active"
    )
    ok(run_cli("policy", "deactivate", svc_policy["id"], "--yes"))  # its mandates stay valid
    return ids, m


def _remember_signer(name: str, fingerprint: str) -> None:
    from caracal.services.facade import Caracal
    from caracal.store import ledger_rows

    with Caracal.open(name) as app, app.store.read() as conn:
        head = ledger_rows.read_head(conn).signed(app.workspace_id)
        assert head is not None
        SIGNERS[app.workspace_id] = (
            head.kid,
            app.ledger_heads.private_key(conn, head.kid),
            fingerprint,
        )
    TRUSTED.add(fingerprint)


def _backup(name: str, locked: bool) -> Archive:
    extra = ("--lock-key-env", LOCK_ENV) if locked else ()
    created = ok(run_cli("backup", "create", "--json", *extra)).json()
    _remember_signer(name, created["signed_by"])
    snap = snapshot(name)
    head_seq = created["ledger_head_seq"]
    events = snap.events()
    marker = events[-1]
    assert marker["type"] == "backup.created" and marker["seq"] == head_seq + 1, marker
    assert json.loads(marker["payload"])["ledger_head_seq"] == head_seq
    # The head the source had when the archive was cut: the event just before the marker.
    assert events[-2]["seq"] == head_seq and events[-2]["hash"] == marker["prev_hash"]
    return Archive(Path(created["path"]), locked, head_seq, marker["prev_hash"], created, snap)


def build_source(backend: str, root: Path, store_url: str | None) -> Source:
    with isolated_home(root):
        ids, mandates = build_world(store_url)
        before = decisions(mandates)
        allowed = [d for d in before.values() if d[0]]
        denied = {d[1] for d in before.values() if not d[0]}
        # The world must exercise both outcomes and several distinct reasons.
        assert allowed and {"MANDATE_REVOKED", "SUBJECT_INACTIVE"} <= denied, before
        source = Source(backend, "src", store_url, ids, mandates, before)
        source.archives[False] = _backup("src", locked=False)
        source.archives[True] = _backup("src", locked=True)
    return source


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Source]]:
    """`sources(backend)`: the shared source workspace on that backend, built on first use."""
    cache: dict[str, Source] = {}
    with contextlib.ExitStack() as stack:

        def get(backend: str) -> Source:
            if backend not in cache:
                url = None
                if backend == "postgresql":
                    _require_postgres()
                    url = stack.enter_context(scratch_database())
                root = tmp_path_factory.mktemp(f"source-{backend}") / "home"
                cache[backend] = build_source(backend, root, url)
            return cache[backend]

        yield get


@pytest.fixture
def sqlite_source(sources: Callable[[str], Source]) -> Source:
    return sources("sqlite")


# ---- PostgreSQL and leftovers --------------------------------------------------------------
def pg_schemas(url: str) -> set[str]:
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    return {row[0] for row in rows}


def assert_nothing_left(home: Path, name: str, pg_url: str | None = None) -> None:
    """No workspace `name`, no hidden staging folder, no PostgreSQL schema for it."""
    workspaces = home / "workspaces"
    assert not (workspaces / name).exists()
    if workspaces.exists():
        hidden = sorted(p.name for p in workspaces.iterdir() if p.name.startswith("."))
        assert hidden == [], f"left behind: {hidden}"
    listed = ok(run_cli("workspace", "list", "--json")).json()
    assert name not in [w["name"] for w in listed]
    if pg_url is not None:
        assert f"caracal_{name.replace('-', '_')}" not in pg_schemas(pg_url)


# ---- archive rewriting ---------------------------------------------------------------------
@dataclass
class Member:
    info: tarfile.TarInfo
    data: bytes = b""

    @property
    def name(self) -> str:
        return self.info.name


def regular(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, 0
    return Member(info, data)


def read_members(path: Path, lock_key: str | None = None) -> list[Member]:
    """Every member of a Caracal archive, in order (read with the standard library only,
    except for decrypting a locked archive)."""
    raw: Any = path.open("rb")
    with contextlib.ExitStack() as stack:
        stack.enter_context(raw)
        if lock_key is not None:
            from caracal.services.backup.envelope import DecryptingReader

            raw = io.BufferedReader(DecryptingReader(raw, lock_key))
        gz = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        tar = stack.enter_context(tarfile.open(fileobj=gz, mode="r|"))
        out = []
        for info in tar:
            handle = tar.extractfile(info) if info.isfile() else None
            out.append(Member(info, handle.read() if handle is not None else b""))
    return out


def write_members(path: Path, members: list[Member], lock_key: str | None = None) -> Path:
    """Write members exactly as Caracal does: the same gzip header, a PAX tar stream, and for
    a locked archive the same envelope."""
    with path.open("xb") as raw:
        crypt = None
        target: Any = raw
        if lock_key is not None:
            from caracal.services.backup.envelope import EncryptingWriter

            crypt = target = EncryptingWriter(raw, lock_key)
        gz = gzip.GzipFile(fileobj=target, mode="wb", compresslevel=1, mtime=0, filename="")
        # Closed explicitly, in order: tar, gzip, envelope (as Caracal's writer does).
        tar = tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        for member in members:
            tar.addfile(member.info, io.BytesIO(member.data) if member.info.isfile() else None)
        tar.close()
        gz.close()
        if crypt is not None:
            crypt.close()
    return path


def manifest_of(members: list[Member]) -> dict[str, Any]:
    assert members[0].name == "manifest.json"
    return json.loads(members[0].data)


def set_manifest(members: list[Member], manifest: dict[str, Any]) -> None:
    """Replace the manifest and, when the source's ledger key is known, re-sign it."""
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    members[0] = regular("manifest.json", data)
    signer = SIGNERS.get(str(manifest.get("workspace_id")))
    if signer is not None and len(members) > 1 and members[1].name == "manifest.sig":
        from caracal.services.backup.trust import signature_document

        kid, private, fingerprint = signer
        members[1] = regular("manifest.sig", signature_document(private, kid, fingerprint, data))


def index_of(members: list[Member], name: str) -> int:
    return next(i for i, m in enumerate(members) if m.name == name)


def replace_data(members: list[Member], name: str, data: bytes, *, declare: bool) -> None:
    """Give member `name` new content; with `declare`, the manifest is updated to match."""
    members[index_of(members, name)] = regular(name, data)
    if declare:
        manifest = manifest_of(members)
        manifest["members"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        set_manifest(members, manifest)


def table_rows(member: Member) -> tuple[dict[str, Any], list[list[Any]]]:
    header, *rows = member.data.decode().splitlines()
    return json.loads(header), [json.loads(r) for r in rows]


def table_dump(header: dict[str, Any], rows: list[list[Any]]) -> bytes:
    lines = [json.dumps(header)] + [json.dumps(r, separators=(",", ":")) for r in rows]
    return ("\n".join(lines) + "\n").encode()


# ---- a workspace whose backups take a few seconds (progress and ctrl+c at a terminal) ----------
BIG_EVENTS = 150_000


@pytest.fixture(scope="session")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(home, archive): the workspace `big`, BIG_EVENTS ledger events, and one archive of it."""
    import subprocess

    from tests.support.long_run import build_big_workspace, caracal_argv, env_for

    home = tmp_path_factory.mktemp("backup-progress") / "home"
    build_big_workspace(home, "big", BIG_EVENTS)
    archive = home / "big.tar.gz"
    subprocess.run(
        caracal_argv("-w", "big", "backup", "create", "-o", str(archive)),
        env=env_for(home),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return home, archive
