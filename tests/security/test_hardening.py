"""Hardening on the embedded store, without Docker.

Secrets: one full scenario through the real CLI (and Flow, and `caracal serve` as a child
process), then every place a secret could leak is scanned for every secret in every encoding
it could take: log files, both backups (the unlocked one member by member, in memory), Flow's
state, the ledger exports, the process list while long commands run, and every other file
under CARACAL_HOME. The scenario runs twice: master key from CARACAL_MASTER_KEY, and from the
generated keys/master.key.

Clock: validation with the clock moved around a mandate's validity window, for several leeway
settings, lands exactly on the documented boundaries.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from caracal.services.facade import Caracal
from caracal.store.schema import secrets as secrets_table
from tests.support.cli import Result, run_cli
from tests.support.http_server import fake_provider
from tests.support.runtime import free_port

ROOT = Path(__file__).resolve().parents[2]
READ = "provider:github:action:read"
REPOS = "provider:github:resource:repos"
CREDENTIAL_VAR = "HARDENING_PROVIDER_TOKEN"
LOCK_VAR = "HARDENING_LOCK_KEY"
GZIP_MAGIC = b"\x1f\x8b"
LONG = os.environ.get("CARACAL_PROVING") == "long"


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


# ---- secrets and their encodings ---------------------------------------------------------------
@dataclass
class Secret:
    label: str
    forms: dict[str, bytes]  # encoding name -> bytes to look for
    allowed_in: frozenset[Path] = frozenset()  # files that legitimately hold it (master.key)


def _b64_forms(raw: bytes) -> dict[str, bytes]:
    standard = base64.b64encode(raw)
    url = base64.urlsafe_b64encode(raw)
    return {
        "base64": standard,
        "base64 (unpadded)": standard.rstrip(b"="),
        "base64url": url.rstrip(b"="),
    }


def bytes_forms(raw: bytes) -> dict[str, bytes]:
    return {
        "raw": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        **_b64_forms(raw),
    }


def text_forms(text: str) -> dict[str, bytes]:
    return {"plain text": text.encode(), **_b64_forms(text.encode())}


def private_key_forms(der: bytes) -> dict[str, bytes]:
    """A P-256 private key as PEM (PKCS#8 and SEC1), DER, and its bare scalar."""
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    none = serialization.NoEncryption()
    pem = serialization.Encoding.PEM
    sec1_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, none
    )
    scalar = key.private_numbers().private_value
    forms = {
        "PKCS#8 PEM": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, none),
        "SEC1 PEM": key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, none),
        "scalar (decimal)": str(scalar).encode(),
    }
    forms.update({f"PKCS#8 DER {k}": v for k, v in bytes_forms(der).items()})
    forms.update({f"SEC1 DER {k}": v for k, v in bytes_forms(sec1_der).items()})
    forms.update({f"scalar {k}": v for k, v in bytes_forms(scalar.to_bytes(32, "big")).items()})
    return forms


def leaks(data: bytes, secrets_: list[Secret], where: str, path: Path | None = None) -> list[str]:
    found = []
    for secret in secrets_:
        if path is not None and path in secret.allowed_in:
            continue
        for encoding, needle in secret.forms.items():
            if needle in data:
                found.append(f"{secret.label} ({encoding}) in {where}")
                break
    return found


# ---- the places to scan ------------------------------------------------------------------------
@dataclass
class Location:
    where: str
    data: bytes
    path: Path | None = None  # the file it came from, when it is one


def archive_members(data: bytes, label: str) -> list[Location]:
    """Every member of a gzip'd tar, decompressed in memory."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            content = handle.read() if handle is not None else b""
            out.append(Location(f"{label} member {member.name}", content))
    return out


def file_locations(root: Path, home: Path) -> list[Location]:
    """Every file under `root`; gzip'd archives also decompressed, member by member."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        where = str(path.relative_to(home))
        out.append(Location(where, data, path))
        if data.startswith(GZIP_MAGIC):
            out.append(Location(f"{where} (decompressed)", gzip.decompress(data)))
            with contextlib.suppress(tarfile.TarError):
                out.extend(archive_members(data, where))
    return out


def process_list() -> bytes:
    """What any local user can see of running commands: `ps` and every /proc/*/cmdline."""
    listing = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True).stdout
    lines = [listing]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            lines.append(cmdline.read_bytes().replace(b"\0", b" ") + b"\n")
    return b"".join(lines)


# ---- the scenario ------------------------------------------------------------------------------
@dataclass
class Scenario:
    mode: str
    home: Path
    secrets: list[Secret] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    plain_backup: Path | None = None
    locked_backup: Path | None = None
    exports: list[Path] = field(default_factory=list)
    process_samples: dict[str, list[bytes]] = field(default_factory=dict)

    @property
    def workspaces(self) -> Path:
        return self.home / "workspaces"


def _sample_while(process: subprocess.Popen[bytes], samples: list[bytes]) -> None:
    while process.poll() is None:
        samples.append(process_list())
        time.sleep(0.05)


def _caracal_process(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "caracal", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def _http(url: str, body: dict[str, Any] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST" if body else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _serve_and_sample(scenario: Scenario, token: str, env: dict[str, str]) -> None:
    """`caracal serve` with two workers (secrets only in the environment and files), some
    decisions, and the process list sampled while it runs."""
    port = free_port()
    log = scenario.home / "serve.log"
    serve = _caracal_process(
        ["serve", "--port", str(port), "--workers", "2", "--access-log"], log, env
    )
    samples = scenario.process_samples.setdefault("caracal serve --workers 2", [])
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                if _http(f"http://127.0.0.1:{port}/health") in (200, 503):
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}/v1/authorize"
        for _ in range(5):
            assert _http(base, {"token": token, "action": READ, "resource": REPOS}) == 200
            assert _http(base, {"token": token + "x", "action": READ, "resource": REPOS}) == 401
            samples.append(process_list())
        assert any(b"--workers 2" in sample for sample in samples), "serve not in the listing"
    finally:
        serve.terminate()
        try:
            serve.wait(15)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


async def _flow_adds_and_tests_a_provider(url: str, credential: str) -> None:
    """Flow's provider form with a credential typed in, then a connection test."""
    from caracal.flow.app import build_app
    from tests.flow.conftest import SIZE, mark_onboarded, until
    from tests.flow.test_providers import choose_row, open_form, open_providers, save_form, text_of

    mark_onboarded("demo")
    app = build_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_providers(pilot)
        await open_form(pilot, "n", "AddProviderModal", "name")
        await pilot.press(*"billing", "tab", *url, "tab", "tab")
        await pilot.press("enter", "down", "down", "enter")  # auth: none -> bearer
        await pilot.press("tab", "tab", *credential, "tab", "tab")
        await pilot.press(*"invoices", "tab", *"invoices:read")
        await until(pilot, lambda: text_of(app, "#form-error") == "", what="form is valid")
        await save_form(pilot, "ProvidersScreen")
        await choose_row(pilot, "billing")
        await pilot.press("v")
        await until(pilot, lambda: "billing: healthy" in text_of(app, "#probe-result"))


def _vault_secrets(workspace: str) -> list[Secret]:
    """Every secret in a workspace's vault (provider credentials, principal and ledger
    private keys), opened with its master key."""
    out = []
    with Caracal.open(workspace) as app, app.store.read() as conn:
        rows = conn.execute(secrets_table.select()).fetchall()
        for row in rows:
            plaintext = app.vault.get(conn, row.ref)
            try:
                forms = private_key_forms(plaintext)
                label = f"private key {row.ref} of workspace {workspace}"
            except ValueError:
                forms = {**text_forms(plaintext.decode()), **bytes_forms(plaintext)}
                label = f"{row.kind} {row.ref} of workspace {workspace}"
            out.append(Secret(label, forms))
    return out


def _master_keys(scenario: Scenario, env_key: str | None) -> list[Secret]:
    out = []
    if env_key is not None:
        out.append(Secret("master key (CARACAL_MASTER_KEY)", bytes_forms(bytes.fromhex(env_key))))
    for key_file in sorted(scenario.workspaces.glob("*/keys/master.key")):
        raw = bytes.fromhex(key_file.read_text().strip())
        label = f"master key ({key_file.relative_to(scenario.home)})"
        out.append(Secret(label, bytes_forms(raw), frozenset({key_file})))
    return out


@pytest.fixture(scope="module", params=["env", "key-file"], ids=lambda m: f"master-key-{m}")
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    home = tmp_path_factory.mktemp(f"secrets-{request.param}")
    scenario = Scenario(request.param, home)
    cli_credential = "ghp_" + secrets.token_hex(20)
    flow_credential = "flow" + secrets.token_hex(8)  # typed key by key: keep it short
    redis_password = "redis" + secrets.token_hex(16)
    lock_key = "lock-" + secrets.token_hex(16)
    env_key = secrets.token_hex(32) if request.param == "env" else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARACAL_HOME", str(home))
        mp.setenv("CARACAL_KEYRING", "off")
        for var in (
            "CARACAL_WORKSPACE",
            "CARACAL_STORE_URL",
            "CARACAL_MASTER_KEY",
            "CARACAL_MASTER_KEY_FILE",
            "CARACAL_REDIS_URL",
        ):
            mp.delenv(var, raising=False)
        if env_key is not None:
            mp.setenv("CARACAL_MASTER_KEY", env_key)
        mp.setenv(CREDENTIAL_VAR, cli_credential)
        mp.setenv(LOCK_VAR, lock_key)

        ok(run_cli("workspace", "create", "demo"))
        ok(run_cli("config", "set", "logging.level", "DEBUG"))  # the most a log ever says
        # A secret setting: an unreachable Redis whose URL carries a password.
        ok(
            run_cli(
                "config",
                "set",
                "runtime.redis_url",
                "--stdin",
                input=f"redis://:{redis_password}@127.0.0.1:{free_port()}/0\n",
            )
        )
        with fake_provider(expected_auth=f"Bearer {cli_credential}") as api:
            ok(
                run_cli(
                    "provider",
                    "add",
                    "github",
                    "--base-url",
                    api.url,
                    "--auth",
                    "bearer",
                    "--credential-env",
                    CREDENTIAL_VAR,
                    "--health-path",
                    "/zen",
                    "--resource",
                    "repos=Repositories",
                    "--action",
                    "repos:read:GET:/repos",
                )
            )
            ok(run_cli("provider", "test", "github"))
            assert api.requests[-1]["authorization"] == f"Bearer {cli_credential}"
        with fake_provider(expected_auth=f"Bearer {flow_credential}") as api:
            asyncio.run(_flow_adds_and_tests_a_provider(api.url, flow_credential))
            assert api.requests[-1]["authorization"] == f"Bearer {flow_credential}"

        for kind, name in [("human", "alice"), ("orchestrator", "planner"), ("worker", "w1")]:
            ok(run_cli("principal", "register", "--kind", kind, "--name", name))
        ok(run_cli("principal", "rotate-key", "alice"))  # a retired key stays in the vault
        for name in ("planner", "w1"):
            ok(
                run_cli(
                    "policy",
                    "create",
                    "--principal",
                    name,
                    "--max-validity",
                    "1h",
                    "--delegation-depth",
                    "1",
                    "--resource",
                    "provider:github:resource:*",
                    "--action",
                    "provider:github:action:*",
                )
            )
        root = ok(
            run_cli(
                "mandate",
                "issue",
                "--issuer",
                "alice",
                "--subject",
                "planner",
                "--ttl",
                "30m",
                "--delegation-depth",
                "1",
                "--resource",
                REPOS,
                "--action",
                READ,
                "--json",
            )
        ).json()
        child = ok(
            run_cli(
                "mandate",
                "delegate",
                root["id"],
                "--subject",
                "w1",
                "--ttl",
                "10m",
                "--resource",
                REPOS,
                "--action",
                READ,
                "--json",
            )
        ).json()
        scenario.tokens = [root["token"], child["token"]]
        validate = ("--action", READ, "--resource", REPOS, "--json")
        ok(run_cli("mandate", "validate", root["id"], *validate))
        ok(run_cli("mandate", "validate", "--token", child["token"], *validate))
        denied = run_cli("mandate", "validate", "--token", child["token"][:-4] + "AAAA", *validate)
        assert denied.code == 6, denied
        ok(run_cli("mandate", "token", root["id"]))

        # Backups: without a lock key in process, with one in a child process (sampled).
        out = home / "exports"
        out.mkdir()
        scenario.plain_backup = out / "plain.tar.gz"
        ok(run_cli("backup", "create", "--output", str(scenario.plain_backup)))
        scenario.locked_backup = out / "locked.tar.gz"
        locked = _caracal_process(
            [
                "backup",
                "create",
                "--output",
                str(scenario.locked_backup),
                "--lock-key-env",
                LOCK_VAR,
            ],
            home / "backup.log",
            dict(os.environ),
        )
        samples = scenario.process_samples.setdefault("caracal backup create --lock-key-env", [])
        _sample_while(locked, samples)
        assert locked.returncode == 0, (home / "backup.log").read_text()
        ok(run_cli("backup", "verify", str(scenario.locked_backup), "--lock-key-env", LOCK_VAR))
        ok(
            run_cli(
                "backup",
                "restore",
                str(scenario.locked_backup),
                "--as",
                "restored",
                "--lock-key-env",
                LOCK_VAR,
            )
        )
        with Caracal.open("restored") as app:  # the locked archive really carried the secrets
            assert app.providers.credential("github") == cli_credential

        for fmt in ("json", "csv"):
            scenario.exports.append(out / f"ledger.{fmt}")
            ok(run_cli("ledger", "export", "--format", fmt, "--output", str(out / f"ledger.{fmt}")))

        # The service, with the secrets only in the environment and in files.
        serve_env = {k: v for k, v in os.environ.items() if k not in (CREDENTIAL_VAR, LOCK_VAR)}
        _serve_and_sample(scenario, child["token"], serve_env)

        scenario.secrets = [
            Secret("provider credential given with --credential-env", text_forms(cli_credential)),
            Secret("provider credential typed in Flow", text_forms(flow_credential)),
            Secret("Redis password in runtime.redis_url", text_forms(redis_password)),
            Secret("backup lock key", text_forms(lock_key)),
            *_master_keys(scenario, env_key),
            *_vault_secrets("demo"),
            *_vault_secrets("restored"),
        ]
        yield scenario


# ---- secrets: the scans ------------------------------------------------------------------------
def _report(found: list[str], scanned: int, what: str) -> None:
    assert not found, f"secrets leaked into {what}:\n  " + "\n  ".join(found)
    print(f"\n  {what}: {scanned} location(s) scanned, no secret found")


def test_the_scenario_has_every_kind_of_secret(scenario: Scenario) -> None:
    labels = " | ".join(s.label for s in scenario.secrets)
    for kind in ("provider-credential", "private key principal/", "private key ledger"):
        assert kind in labels, labels
    assert "master key" in labels
    private_keys = [s for s in scenario.secrets if s.label.startswith("private key principal/")]
    assert len(private_keys) >= 8, labels  # alice twice, planner, w1; in both workspaces
    # The scanner finds what it looks for, in every encoding it knows.
    probe = private_key_forms(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for encoding, needle in probe.items():
        assert leaks(b"..." + needle + b"...", [Secret("probe", {encoding: needle})], "x")
    print(
        f"\nsecrets scan ({scenario.mode}): {len(scenario.secrets)} secrets, "
        f"{sum(len(s.forms) for s in scenario.secrets)} encodings"
    )


def test_no_secret_in_any_log(scenario: Scenario) -> None:
    logs = sorted(scenario.workspaces.glob("*/logs/*"))
    logs += [scenario.home / "serve.log", scenario.home / "backup.log"]
    assert scenario.workspaces / "demo" / "logs" / "caracal.log" in logs
    found = []
    for path in logs:
        where = str(path.relative_to(scenario.home))
        found += leaks(path.read_bytes(), scenario.secrets, where)
    _report(found, len(logs), "log files")


def test_no_bearer_token_in_logs_or_ledger_exports(scenario: Scenario) -> None:
    places = [*sorted(scenario.workspaces.glob("*/logs/*")), scenario.home / "serve.log"]
    places += scenario.exports
    tokens = [Secret(f"mandate token {i}", text_forms(t)) for i, t in enumerate(scenario.tokens)]
    # The signature alone is enough to recognise a token.
    tokens += [
        Secret(f"mandate token {i} signature", {"signature": t.rsplit(".", 1)[1].encode()})
        for i, t in enumerate(scenario.tokens)
    ]
    found = []
    for path in places:
        found += leaks(path.read_bytes(), tokens, str(path.relative_to(scenario.home)))
    _report(found, len(places), "logs and ledger exports (mandate tokens)")


def test_no_secret_in_the_unlocked_backup(scenario: Scenario) -> None:
    assert scenario.plain_backup is not None
    data = scenario.plain_backup.read_bytes()
    members = archive_members(data, "the unlocked backup")
    names = {m.where.rsplit(" ", 1)[1] for m in members}
    assert {"manifest.json", "config.yaml", "flow_state.json", "providers.json"} <= names
    assert "secrets.jsonl" not in names and "config-secrets.json" not in names
    manifest = json.loads(next(m.data for m in members if m.where.endswith("manifest.json")))
    assert manifest["secrets"] == "omitted"
    found = []
    for member in [Location("the unlocked backup (decompressed)", gzip.decompress(data))]:
        found += leaks(member.data, scenario.secrets, member.where)
    for member in members:
        found += leaks(member.data, scenario.secrets, member.where)
    _report(found, len(members), "the unlocked backup's members")


def test_the_locked_backup_holds_no_plaintext(scenario: Scenario) -> None:
    assert scenario.locked_backup is not None
    data = scenario.locked_backup.read_bytes()
    assert not data.startswith(GZIP_MAGIC), "the locked backup is not encrypted"
    _report(leaks(data, scenario.secrets, "the locked backup"), 1, "the locked backup")


def test_no_secret_in_flow_state(scenario: Scenario) -> None:
    states = sorted(scenario.workspaces.glob("*/flow_state.json"))
    demo = json.loads((scenario.workspaces / "demo" / "flow_state.json").read_text())
    actions = " | ".join(r["action"] for r in demo["recent_actions"])
    assert "billing" in actions, actions  # Flow did write its state in the scenario
    found = []
    for path in states:
        found += leaks(path.read_bytes(), scenario.secrets, str(path.relative_to(scenario.home)))
    _report(found, len(states), "Flow state files")


def test_no_secret_in_the_ledger_exports(scenario: Scenario) -> None:
    found = []
    for path in scenario.exports:
        data = path.read_bytes()
        assert b"validation.allowed" in data and b"mandate.issued" in data, path
        found += leaks(data, scenario.secrets, str(path.relative_to(scenario.home)))
    _report(found, len(scenario.exports), "ledger exports (json, csv)")


def test_no_secret_in_the_process_list(scenario: Scenario) -> None:
    found = []
    count = 0
    for command, samples in scenario.process_samples.items():
        assert samples, f"no process listing taken while {command} ran"
        for sample in samples:
            count += 1
            found += leaks(sample, scenario.secrets, f"the process list while {command} ran")
    backup = scenario.process_samples["caracal backup create --lock-key-env"]
    assert any(b"backup create" in s for s in backup), "the backup was not seen running"
    _report(sorted(set(found)), count, "process listings")


def test_no_secret_at_rest_under_caracal_home(scenario: Scenario) -> None:
    locations = file_locations(scenario.home, scenario.home)
    found = []
    for location in locations:
        found += leaks(location.data, scenario.secrets, location.where, location.path)
    key_files = sorted(scenario.workspaces.glob("*/keys/master.key"))
    if scenario.mode == "env":
        assert not key_files, "the master key from CARACAL_MASTER_KEY was written to disk"
    for key_file in key_files:  # the scan does see a key where it is allowed to be
        assert leaks(key_file.read_bytes(), scenario.secrets, "its own file"), key_file
    _report(found, len(locations), f"files under CARACAL_HOME ({scenario.mode})")


# ---- clock -------------------------------------------------------------------------------------
# Validation allows a mandate when  not_before - L <= now < expires_at + L  (L: the leeway):
#   now <  not_before - L   -> MANDATE_NOT_YET_VALID
#   now >= expires_at + L   -> MANDATE_EXPIRED   (expiry is exclusive, not-before inclusive)
CLOCK_CASES: list[tuple[str, Callable[[dict[str, int], int], float], str]] = [
    ("not_before - L", lambda m, L: m["nbf"] - L, "ALLOWED"),
    ("not_before - L - 1ms", lambda m, L: m["nbf"] - L - 0.001, "MANDATE_NOT_YET_VALID"),
    ("not_before - L - 1s", lambda m, L: m["nbf"] - L - 1, "MANDATE_NOT_YET_VALID"),
    ("expires_at + L - 1s", lambda m, L: m["exp"] + L - 1, "ALLOWED"),
    ("expires_at + L - 1ms", lambda m, L: m["exp"] + L - 0.001, "ALLOWED"),
    ("expires_at + L", lambda m, L: m["exp"] + L, "MANDATE_EXPIRED"),
    ("expires_at + L + 1s", lambda m, L: m["exp"] + L + 1, "MANDATE_EXPIRED"),
]


@pytest.fixture
def clock_world(home: Path) -> dict[str, dict[str, int]]:
    """Three mandates issued at the real time T: 5 minutes, 30 minutes, and one starting in
    10 minutes for 10 minutes."""
    ok(run_cli("workspace", "create", "demo"))
    ok(
        run_cli(
            "provider",
            "add",
            "github",
            "--base-url",
            "https://api.github.com",
            "--resource",
            "repos",
            "--action",
            "repos:read",
        )
    )
    ok(run_cli("principal", "register", "--kind", "human", "--name", "alice"))
    ok(run_cli("principal", "register", "--kind", "orchestrator", "--name", "orch"))
    ok(
        run_cli(
            "policy",
            "create",
            "--principal",
            "orch",
            "--max-validity",
            "1h",
            "--resource",
            "provider:github:resource:*",
            "--action",
            "provider:github:action:*",
        )
    )
    issued = {}
    for name, extra in [
        ("short", ("--ttl", "5m")),
        ("long", ("--ttl", "30m")),
        ("later", ("--ttl", "10m", "--starts-in", "10m")),
    ]:
        args = ["mandate", "issue", "--issuer", "alice", "--subject", "orch", *extra, "--json"]
        mandate = ok(run_cli(*args, "--resource", REPOS, "--action", READ)).json()
        claims = json.loads(base64.urlsafe_b64decode(mandate["token"].split(".")[1] + "=="))
        issued[name] = {"id": mandate["id"], **{k: claims[k] for k in ("iat", "nbf", "exp")}}
    return issued


def _decide(mandate_id: str, at: float) -> str:
    with Caracal.open(clock=lambda: at) as app:
        return app.validation.validate(READ, REPOS, mandate_id=mandate_id).reason_code


@pytest.mark.parametrize("leeway", [0, 30, 90])
def test_clock_leeway_boundaries_are_exact(
    clock_world: dict[str, dict[str, int]], leeway: int
) -> None:
    ok(run_cli("config", "set", "validation.clock_leeway_seconds", str(leeway)))
    later = clock_world["later"]
    assert later["nbf"] - later["iat"] == 600 and later["exp"] - later["nbf"] == 600
    wrong = []
    for label, at, expected in CLOCK_CASES:
        got = _decide(str(later["id"]), at(later, leeway))
        if got != expected:
            wrong.append(f"L={leeway}: at {label} expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)
    assert ok(run_cli("ledger", "verify")).code == 0  # decisions at odd times keep the chain
    print(f"\nclock leeway {leeway}s: {len(CLOCK_CASES)} boundary cases exact")


@pytest.mark.parametrize("leeway", [0, 30, 90])
def test_clock_moved_ten_minutes_either_way(
    clock_world: dict[str, dict[str, int]], leeway: int
) -> None:
    ok(run_cli("config", "set", "validation.clock_leeway_seconds", str(leeway)))
    cases = [
        # (mandate, clock moved from its issuance by, expected decision)
        ("short", 0, "ALLOWED"),
        ("short", +600, "MANDATE_EXPIRED"),  # a 5 min mandate 10 min later
        ("short", -600, "MANDATE_NOT_YET_VALID"),  # a validator 10 min behind the issuer
        ("long", +600, "ALLOWED"),  # a 30 min mandate 10 min later
        ("long", -600, "MANDATE_NOT_YET_VALID"),
        ("later", 0, "MANDATE_NOT_YET_VALID"),  # starts 10 min after issuance
        ("later", -600, "MANDATE_NOT_YET_VALID"),
        ("later", +600, "ALLOWED"),  # exactly its not-before
        ("later", +1200, "ALLOWED" if leeway else "MANDATE_EXPIRED"),  # exactly its expiry
        ("later", +1200 + leeway, "MANDATE_EXPIRED"),
    ]
    wrong = []
    for name, shift, expected in cases:
        got = _decide(str(clock_world[name]["id"]), clock_world[name]["iat"] + shift)
        if got != expected:
            wrong.append(f"L={leeway}: {name} at T{shift:+d}s expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)
    print(f"\nclock moved ±10 min, leeway {leeway}s: {len(cases)} cases as the rules say")


def _rule(at: float, mandate: dict[str, int], leeway: int) -> str:
    if at < mandate["nbf"] - leeway:
        return "MANDATE_NOT_YET_VALID"
    if at >= mandate["exp"] + leeway:
        return "MANDATE_EXPIRED"
    return "ALLOWED"


@pytest.mark.parametrize("leeway", [0, 30])
def test_clock_sweep_from_ten_minutes_before_to_ten_minutes_after(
    clock_world: dict[str, dict[str, int]], leeway: int
) -> None:
    """Every step of the clock from 10 min before the mandate's window (less the leeway) to
    10 min after it, through one open workspace: each decision is the rule's."""
    ok(run_cli("config", "set", "validation.clock_leeway_seconds", str(leeway)))
    later = clock_world["later"]
    step = 0.25 if LONG else 7.0
    start, stop = later["nbf"] - leeway - 600, later["exp"] + leeway + 600
    now = [float(start)]
    wrong = []
    cases = 0
    with Caracal.open(clock=lambda: now[0]) as app:
        while now[0] <= stop:
            got = app.validation.validate(READ, REPOS, mandate_id=str(later["id"])).reason_code
            cases += 1
            if got != _rule(now[0], later, leeway):
                wrong.append(f"L={leeway}: at {now[0] - later['nbf']:+.2f}s from not-before: {got}")
            now[0] += step
    assert not wrong, "\n".join(wrong[:20])
    assert ok(run_cli("ledger", "verify")).code == 0
    print(f"\nclock sweep, leeway {leeway}s, step {step}s: {cases} decisions as the rules say")
