"""Backup benchmarks: `backup create` and `backup restore` of a large workspace.

The workspace (FULL: 100,000 mandates, 1,000,000 ledger events) is built once, verified, and
cached under bench/results/backup-cache/ (git-ignored); every run copies it into its own
temporary CARACAL_HOME. Each measured operation runs in a fresh child process
(`python -m bench.backup OP PARAMS`), so its time and peak RSS are its own.
Run with `python -m bench --only backup` (see bench/README.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bench.common import Result, Sizes, _Profiling, median, temporary_home

if TYPE_CHECKING:
    from caracal.core.ledger import NewEvent
    from caracal.core.mandates import MandateClaims
    from caracal.services.facade import Caracal

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / "results" / "backup-cache"
WORKSPACE = "bench"
BUILD_VERSION = 1  # bump when the data set's shape changes
LOCK_ENV = "CARACAL_BENCH_LOCK_KEY"
PG_ADMIN_DSN = os.environ.get(
    "CARACAL_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TIME_TARGET_NS = 60e9
RSS_TARGET_MB = 500.0
MANDATE_BATCH = 2_000  # mandates (and their ledger events) per transaction while building

# The provider catalog of the data set: github, three resources, six (resource, action) pairs.
_RESOURCES = ("repos", "issues", "pulls")
_ACTIONS = (
    ("repos", "read"),
    ("repos", "write"),
    ("issues", "read"),
    ("issues", "comment"),
    ("pulls", "read"),
    ("pulls", "merge"),
)
_RES_SCOPES = tuple(f"provider:github:resource:{r}" for r in _RESOURCES)
_ACT_SCOPES = tuple(sorted({f"provider:github:action:{a}" for _, a in _ACTIONS}))


# ---- the data set ----------------------------------------------------------------------------
@dataclass
class _Mandate:
    """What the builder keeps of each mandate: enough to delegate from it and to write
    realistic validation events about it (never the token itself, only its hash prefix)."""

    id: str
    subject_id: str
    subject_kind: str
    resources: tuple[str, ...]
    actions: tuple[str, ...]
    depth: int
    expires_at: int
    token_sha16: str
    root_id: str
    revoked: bool = False


@dataclass
class _Party:
    id: str
    name: str
    kind: str
    policy_id: str | None = None
    max_validity: int = 0
    max_depth: int = 0


@dataclass
class Dataset:
    mandates: int
    revoked: int
    events: int
    principals: int
    build_seconds: float
    cached: bool = False
    notes: list[str] = field(default_factory=list)


# What defines the stored data (tables, migrations, event hashing, token encoding): a change
# in one of these rebuilds the cached workspace. Any other change is caught by `_check`, run
# on every copy taken from the cache.
_FORMAT_FILES = (
    "store/schema.py",
    "store/migrations",
    "core/ledger.py",
    "core/canonical.py",
    "core/jws.py",
    "core/mandates.py",
)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    root = REPO / "caracal"
    for name in _FORMAT_FILES:
        path = root / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _size_label(sizes: Sizes) -> str:
    return f"m{sizes.backup_mandates}-e{sizes.backup_events}"


def dataset(sizes: Sizes, home: Path) -> Dataset:
    """Put the benchmark workspace into `home` (the current CARACAL_HOME): a copy of the
    cached one if it matches the sizes and the stored-data format and still checks out, else
    a fresh build (then cached, unless CARACAL_BENCH_CACHE=off)."""
    use_cache = os.environ.get("CARACAL_BENCH_CACHE", "on") != "off"
    label = _size_label(sizes)
    key = f"{label}-v{BUILD_VERSION}-{_fingerprint()}"
    cached = CACHE / key
    if use_cache and (cached / "dataset.json").is_file():
        started = time.perf_counter()
        shutil.copytree(cached / "home", home)
        info = Dataset(**json.loads((cached / "dataset.json").read_text()))
        copied = time.perf_counter() - started
        problem = _checked_copy(info.events)
        if problem is None:
            info.cached = True
            info.notes.append(
                f"workspace copied from {cached.relative_to(REPO)} in {copied:.1f} s and "
                f"checked in {time.perf_counter() - started - copied:.1f} s (it was built in "
                f"{info.build_seconds:.0f} s)"
            )
            return info
        shutil.rmtree(home)
        shutil.rmtree(cached, ignore_errors=True)
        print(f"    (cached workspace refused, rebuilding: {problem})", flush=True)
    info = _build(sizes, home)
    if use_cache:
        for stale in CACHE.glob(f"{label}-*"):  # one cached workspace per size
            shutil.rmtree(stale, ignore_errors=True)
        partial = CACHE / f".{key}.{secrets.token_hex(4)}"
        partial.mkdir(parents=True)
        shutil.copytree(home, partial / "home")
        (partial / "dataset.json").write_text(
            json.dumps({k: v for k, v in info.__dict__.items() if k not in ("cached", "notes")})
        )
        partial.rename(cached)
    return info


def _checked_copy(events: int) -> str | None:
    """None if the copied workspace opens and passes `_check` with this code, else why not."""
    from caracal.services.facade import Caracal
    from caracal.services.logs import detach_workspace_log

    try:
        app = Caracal.open(WORKSPACE)
    except Exception as exc:  # any failure means "rebuild"
        return f"{type(exc).__name__}: {exc}"
    try:
        _check(app, events, random.Random(7))
    except Exception as exc:  # any failure means "rebuild"
        return f"{type(exc).__name__}: {exc}"
    finally:
        app.close()
        detach_workspace_log(app.paths.log_file)
    return None


def _build(sizes: Sizes, home: Path) -> Dataset:
    from caracal.services.facade import Caracal
    from caracal.services.logs import detach_workspace_log
    from caracal.services.workspaces import WorkspaceManager

    assert Path(os.environ["CARACAL_HOME"]) == home
    started = time.perf_counter()
    WorkspaceManager().create(WORKSPACE)
    app = Caracal.open(WORKSPACE)
    try:
        rng = random.Random(20_240_601)
        parties = _setup(app, sizes.backup_mandates)
        made = _issue_mandates(app, parties, sizes.backup_mandates, rng)
        revoked = _revoke_some(app, made, rng)
        _fill_ledger(app, made, parties, sizes.backup_events, sizes.ledger_fill_batch, rng)
        head_seq, _ = app.ledger.head()
        # Each signed checkpoint keeps its head as one more event (ledger.head_kept).
        slack = sizes.backup_events // app.config.ledger.checkpoint_every + 1
        if not sizes.backup_events <= head_seq <= sizes.backup_events + slack:
            raise RuntimeError(f"built a ledger of {head_seq} events, wanted {sizes.backup_events}")
        seconds = time.perf_counter() - started
        _check(app, head_seq, rng)
    finally:
        app.close()
        detach_workspace_log(app.paths.log_file)
    return Dataset(
        len(made),
        revoked,
        head_seq,
        sum(len(group) for group in parties.values()),
        seconds,
        notes=[f"workspace built in {seconds:.0f} s (not cached yet), verified afterwards"],
    )


def _setup(app: Caracal, mandates: int) -> dict[str, list[_Party]]:
    """The provider, humans, orchestrators and workers (each with a key), agents' policies."""
    from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec

    app.providers.add(
        ProviderSpec(
            "github",
            "https://api.github.com",
            resources=tuple(ProviderResource(r) for r in _RESOURCES),
            actions=tuple(ProviderAction(r, a) for r, a in _ACTIONS),
        )
    )
    counts = {
        "human": max(2, mandates // 10_000),
        "orchestrator": max(4, mandates // 1_500),
        "worker": max(8, mandates // 300),
    }
    limits = {"orchestrator": ("30d", 3), "worker": ("7d", 1)}
    parties: dict[str, list[_Party]] = {}
    for kind, count in counts.items():
        group = parties.setdefault(kind, [])
        for i in range(count):
            principal = app.principals.register(kind, f"{kind}-{i:04d}")
            party = _Party(principal.id, principal.name, kind)
            if kind in limits:
                validity, depth = limits[kind]
                policy = app.policies.create(
                    principal.name,
                    validity,
                    ["provider:github:resource:*"],
                    ["provider:github:action:*"],
                    depth,
                )
                party.policy_id, party.max_validity, party.max_depth = (
                    policy.id,
                    policy.max_validity,
                    policy.delegation_depth,
                )
            group.append(party)
    return parties


def _subset(rng: random.Random, scopes: tuple[str, ...], most: int) -> tuple[str, ...]:
    return tuple(sorted(rng.sample(scopes, rng.randint(1, min(most, len(scopes))))))


def _issue_mandates(
    app: Caracal, parties: dict[str, list[_Party]], total: int, rng: random.Random
) -> list[_Mandate]:
    """60 % root mandates (human → orchestrator or worker), 40 % delegations from earlier
    mandates that still have depth (orchestrator → orchestrator or worker, worker → worker),
    each signed by its issuer's key, with its `mandate.issued` / `mandate.delegated` event,
    MANDATE_BATCH per transaction: what `app.mandates.issue` / `delegate` write, faster."""
    made: list[_Mandate] = []
    delegable: list[int] = []  # indexes into `made` of mandates with depth left
    by_id = {p.id: p for group in parties.values() for p in group}
    roots = max(1, total * 6 // 10)
    while len(made) < total:
        # Roots and delegations never share a batch: a delegation's parent is already stored.
        if len(made) < roots:
            plans = [_root_plan(parties, rng) for _ in range(min(MANDATE_BATCH, roots - len(made)))]
        else:
            count = min(MANDATE_BATCH, total - len(made))
            plans = [_child_plan(made, delegable, rng) for _ in range(count)]

        def work(conn: Any, plans: list[tuple[Any, ...]] = plans) -> list[_Mandate]:
            return _store_batch(app, conn, plans, by_id, rng)

        for mandate in app.store.write(work):
            if mandate.depth > 0:
                delegable.append(len(made))
            made.append(mandate)
    return made


def _root_plan(parties: dict[str, list[_Party]], rng: random.Random) -> tuple[Any, ...]:
    issuer = rng.choice(parties["human"])
    kind = "orchestrator" if rng.random() < 0.4 else "worker"
    subject = rng.choice(parties[kind])
    ttl = rng.randint(3_600, subject.max_validity)
    depth = rng.randint(1, subject.max_depth) if kind == "orchestrator" else rng.randint(0, 1)
    res = _subset(rng, _RES_SCOPES, 2)
    act = _subset(rng, _ACT_SCOPES, 3)
    return (None, issuer.id, subject.id, res, act, ttl, depth)


def _child_plan(made: list[_Mandate], delegable: list[int], rng: random.Random) -> tuple[Any, ...]:
    parent = made[rng.choice(delegable)]
    if parent.subject_kind == "orchestrator" and rng.random() < 0.3:
        kind = "orchestrator"
    else:
        kind = "worker"
    res = _subset(rng, parent.resources, len(parent.resources))
    act = _subset(rng, parent.actions, len(parent.actions))
    return (parent, parent.subject_id, kind, res, act, rng.randint(600, 86_400), None)


def _store_batch(
    app: Caracal,
    conn: Any,
    plans: list[tuple[Any, ...]],
    by_id: dict[str, _Party],
    rng: random.Random,
) -> list[_Mandate]:
    from caracal.core import jws
    from caracal.core.mandates import MandateClaims
    from caracal.services.ids import new_id
    from caracal.services.mandate_issuance import IssuedMandate, issued_event
    from caracal.store import mandate_rows

    now = int(app.clock())
    workspace_id = app.workspace_id
    pools: dict[str, list[_Party]] = {}
    for party in by_id.values():
        pools.setdefault(party.kind, []).append(party)
    out: list[_Mandate] = []
    events: list[NewEvent] = []
    for parent, issuer_id, subject, wanted_res, wanted_act, ttl, root_depth in plans:
        issuer = by_id[issuer_id]
        if parent is None:
            target = by_id[subject]
            depth = root_depth
            expires = now + ttl
        else:
            target = rng.choice(pools[subject])
            depth = min(parent.depth - 1, target.max_depth)
            expires = min(parent.expires_at, now + min(ttl, target.max_validity))
        within = (parent.resources, parent.actions) if parent is not None else None
        res, act, grants = _declared(wanted_res, wanted_act, within)
        claims = MandateClaims(
            id=new_id("mnd", 10),
            workspace_id=workspace_id,
            issuer_id=issuer.id,
            subject_id=target.id,
            issued_at=now,
            not_before=now,
            expires_at=expires,
            resources=res,
            actions=act,
            depth=depth,
            parent_id=parent.id if parent is not None else None,
            intent_hash=None,
            grants=grants,
        )
        kid, private = app.signing.signer(conn, issuer.id, issuer.name)
        token = jws.encode(claims.to_claims(), kid, private)
        root_id = parent.root_id if parent is not None else claims.id
        mandate_rows.insert(conn, claims, kid, token, root_id, target.policy_id)
        issued = IssuedMandate(claims.id, token, claims, False, kid, root_id, target.policy_id)
        kind = "mandate.issued" if parent is None else "mandate.delegated"
        events.append(issued_event(kind, issued))
        out.append(_described(claims, target.kind, token, root_id))
    app.ledger.record(conn, *events)
    return out


_DECLARED = {(f"provider:github:resource:{r}", f"provider:github:action:{a}") for r, a in _ACTIONS}


def _declared(
    res: tuple[str, ...],
    act: tuple[str, ...],
    within: tuple[tuple[str, ...], tuple[str, ...]] | None,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The scopes narrowed to the catalog's declared pairs among them (as issuance would
    demand), and the grants: index pairs, as the claims hold them. With none, one declared
    pair of the parent's scopes (`within`), or of the catalog."""
    pairs = [(r, a) for r in res for a in act if (r, a) in _DECLARED]
    if not pairs:
        pool_res, pool_act = within or (_RES_SCOPES, _ACT_SCOPES)
        pairs = [min(p for p in _DECLARED if p[0] in pool_res and p[1] in pool_act)]
    kept_res = tuple(sorted({r for r, _ in pairs}))
    kept_act = tuple(sorted({a for _, a in pairs}))
    grants = tuple(
        (i, j)
        for i, r in enumerate(kept_res)
        for j, a in enumerate(kept_act)
        if (r, a) in _DECLARED and (r, a) in pairs
    )
    return kept_res, kept_act, grants


def _described(claims: MandateClaims, kind: str, token: str, root_id: str) -> _Mandate:
    return _Mandate(
        claims.id,
        claims.subject_id,
        kind,
        claims.resources,
        claims.actions,
        claims.depth,
        claims.expires_at,
        hashlib.sha256(token.encode()).hexdigest()[:16],
        root_id,
    )


def _revoke_some(app: Caracal, made: list[_Mandate], rng: random.Random) -> int:
    """Revoke 0.5 % of the root mandates through `app.mandates.revoke` (each with its whole
    subtree, one `mandate.revoked` event per mandate): revocations are part of a real ledger."""
    roots = [m for m in made if m.root_id == m.id]
    index = {m.id: m for m in made}
    revoked = 0
    for mandate in rng.sample(roots, max(1, len(roots) // 200)):
        result = app.mandates.revoke(mandate.id, "benchmark: compromised agent")
        for ident in result.revoked:
            index[ident].revoked = True
        revoked += len(result.revoked)
    return revoked


_DENIALS = (
    ("ACTION_OUT_OF_SCOPE", 0.45),
    ("RESOURCE_OUT_OF_SCOPE", 0.2),
    ("MANDATE_REVOKED", 0.15),
    ("CALLER_MISMATCH", 0.1),
    ("MANDATE_EXPIRED", 0.1),
)


def _denial(rng: random.Random) -> str:
    pick, acc = rng.random(), 0.0
    for code, share in _DENIALS:
        acc += share
        if pick < acc:
            return code
    return _DENIALS[-1][0]


def _record(app: Caracal, events: list[NewEvent], conn: Any) -> int:
    return app.ledger.record(conn, *events)


def _validation_event(mandate: _Mandate, callers: list[_Party], rng: random.Random) -> NewEvent:
    """One event shaped exactly like `ValidationService._record`'s, about `mandate`:
    85 % allowed, the rest denied for the usual reasons."""
    from caracal.core.ledger import NewEvent

    action = rng.choice(mandate.actions)
    resource = rng.choice(mandate.resources)
    caller = mandate.subject_id if rng.random() < 0.5 else None
    code, reason = "ALLOWED", "allowed"
    if mandate.revoked:
        code, reason = "MANDATE_REVOKED", f"mandate {mandate.id} was revoked"
    elif rng.random() >= 0.85:
        code = _denial(rng)
        if code == "ACTION_OUT_OF_SCOPE":
            action = rng.choice([a for a in _ACT_SCOPES if a not in mandate.actions] or [action])
            reason = f"action {action} is not granted"
        elif code == "RESOURCE_OUT_OF_SCOPE":
            resource = rng.choice(
                [r for r in _RES_SCOPES if r not in mandate.resources] or [resource]
            )
            reason = f"resource {resource} is not granted"
        elif code == "CALLER_MISMATCH":
            caller = rng.choice(callers).name
            reason = f"caller {caller} is not the subject {mandate.subject_id}"
        elif code == "MANDATE_EXPIRED":
            reason = f"mandate {mandate.id} has expired"
        else:
            code, reason = "MANDATE_REVOKED", f"mandate {mandate.id} was revoked"
    payload = {
        "action": action,
        "resource": resource,
        "caller": caller,
        "reason": reason,
        "token_sha256": mandate.token_sha16,
    }
    return NewEvent(
        "validation.allowed" if code == "ALLOWED" else "validation.denied",
        payload,
        principal_id=mandate.subject_id,
        mandate_id=mandate.id,
        reason_code=code,
    )


def _fill_ledger(
    app: Caracal,
    made: list[_Mandate],
    parties: dict[str, list[_Party]],
    total: int,
    batch: int,
    rng: random.Random,
) -> None:
    """Validation events about the data set's own mandates, `batch` per transaction, until the
    ledger holds `total` events (and the few that record a head kept every 1,000, as usual)."""
    callers = parties["worker"] + parties["orchestrator"]
    head, _ = app.ledger.head()
    while head < total:
        count = min(batch, total - head)
        events = [_validation_event(rng.choice(made), callers, rng) for _ in range(count)]
        app.store.write(partial(_record, app, events))
        head, _ = app.ledger.head()


def _check(app: Caracal, head_seq: int, rng: random.Random) -> None:
    """The data set must be sound: the ledger verifies, and sampled live tokens (roots and
    delegations) validate as ALLOWED at their start time."""
    from caracal.core import jws
    from caracal.core.mandates import MandateClaims
    from caracal.services.authority_state import StoreAuthorityState
    from caracal.store.schema import mandates

    report = app.ledger.verify()
    if not report.ok or report.events != head_seq:
        raise RuntimeError(f"the benchmark ledger does not verify: {report.problem}")
    with app.store.read() as conn:
        live = select(mandates.c.id).where(mandates.c.revoked_at.is_(None))
        ids = [r.id for r in conn.execute(live.order_by(mandates.c.id))]
        for ident in rng.sample(ids, min(200, len(ids))):
            row = conn.execute(select(mandates).where(mandates.c.id == ident)).one()
            state = StoreAuthorityState(conn, app.workspace_id, app.signing)
            granted = MandateClaims.from_claims(jws.decode(row.token).claims)
            resource, action = min(granted.granted_pairs())
            decision = app.validator.validate(
                row.token, action, resource, state, row.not_before + 1
            )
            if not decision.allowed:
                raise RuntimeError(
                    f"mandate {ident} does not validate: {decision.reason_code} {decision.reason}"
                )


# ---- child processes ------------------------------------------------------------------------
@dataclass
class Measured:
    seconds: float  # the operation itself, timed inside the child
    wall: float  # the whole child process, start-up and imports included
    rss_mb: float  # the child's own peak RSS (VmHWM)
    workers_rss_mb: float  # the largest peak RSS among the child's own children (0 if none)
    tree_mb: float  # the largest sum of RSS over the child and its children, sampled
    result: dict[str, Any]

    @property
    def total_rss_mb(self) -> float:
        """Upper bound of the operation's memory: its process's peak plus its largest helper
        process's peak (the ledger-verify worker runs alongside the restore)."""
        return self.rss_mb + self.workers_rss_mb


def run_child(op: str, params: dict[str, Any], env: dict[str, str] | None = None) -> Measured:
    """Run one operation in a fresh interpreter; its stdout's last line is a JSON report."""
    if _Profiling.kind is not None:
        params = {**params, "profile": _Profiling.kind}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.backup", op, json.dumps(params)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=3_600,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"backup benchmark child {op} failed ({proc.returncode}):\n{tail}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report.get("profile"):
        _Profiling.reports.append((f"backup: {op} {params.get('label', '')}", report["profile"]))
    return Measured(
        report["seconds"],
        wall,
        report["hwm_kb"] * 1024 / 1e6,
        report["workers_hwm_kb"] * 1024 / 1e6,
        report["tree_kb"] * 1024 / 1e6,
        report["result"],
    )


def _status_kb(pid: int | str, field_name: str) -> int:
    """One `kB` field of /proc/PID/status (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cmdline(pid: int | str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class _MemoryWatch(threading.Thread):
    """Polls this process's children (the restore's ledger-verify worker) every `interval`
    seconds: their peak RSS (VmHWM, kept by the kernel, so only growth in a child's last
    interval can be missed) and the largest sum of RSS across this process and its children.
    ru_maxrss cannot serve: Linux carries the parent's high-water mark across fork + exec,
    so a child's ru_maxrss is never below its parent's RSS at the time of the fork."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.workers_hwm_kb = 0
        self.tree_kb = 0
        self._stop_event = threading.Event()
        self._own = _cmdline("self")

    def _children(self) -> list[str]:
        """Child pids that have exec'd. Until then (subprocess uses vfork) a child shares this
        process's memory, and its VmHWM would be ours: skip it while its cmdline is ours."""
        found: list[str] = []
        for path in Path("/proc/self/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += path.read_text().split()
        return [pid for pid in found if _cmdline(pid) not in (self._own, b"")]

    def sample(self) -> None:
        tree = _status_kb("self", "VmRSS")
        for pid in self._children():
            self.workers_hwm_kb = max(self.workers_hwm_kb, _status_kb(pid, "VmHWM"))
            tree += _status_kb(pid, "VmRSS")
        self.tree_kb = max(self.tree_kb, tree)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


def _child(op: str, params: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child: import first (not timed), then time the operation alone."""
    from caracal.services.backup.restore import restore
    from caracal.services.facade import Caracal
    from caracal.services.workspaces import WorkspaceManager

    lock_key = os.environ.get(LOCK_ENV) if params.get("locked") else None

    def create() -> dict[str, Any]:
        with Caracal.open(params["workspace"]) as app:
            return app.backups.create(Path(params["output"]), lock_key).to_dict()

    def restore_() -> dict[str, Any]:
        return restore(
            WorkspaceManager(),
            Path(params["archive"]),
            params["name"],
            lock_key=lock_key,
            store_url=params.get("store_url"),
        ).to_dict()

    def baseline() -> dict[str, Any]:
        return {}

    fn = {"create": create, "restore": restore_, "baseline": baseline}[op]
    watch = _MemoryWatch()
    watch.start()
    started = time.perf_counter()
    result, profile_text = _profiled(fn, params.get("profile"))
    seconds = time.perf_counter() - started
    watch.stop()
    return {
        "seconds": seconds,
        "hwm_kb": _status_kb("self", "VmHWM"),
        "workers_hwm_kb": watch.workers_hwm_kb,
        "tree_kb": watch.tree_kb,
        "result": result,
        "profile": profile_text,
    }


def _profiled(fn: Callable[[], dict[str, Any]], kind: str | None) -> tuple[dict[str, Any], str]:
    """`fn()`, under cProfile or pyinstrument when asked (`--profile`); with its report."""
    if kind == "cprofile":
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(fn)
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).strip_dirs()
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)
        return result, buf.getvalue()
    if kind == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
        try:
            result = fn()
        finally:
            profiler.stop()
        return result, profiler.output_text(unicode=True, color=False)
    return fn(), ""


# ---- PostgreSQL scratch database -------------------------------------------------------------
@contextlib.contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A new database on the benchmark server (yields its SQLAlchemy URL, drops it after), or
    None when PostgreSQL cannot be reached or CARACAL_BENCH_PG=off."""
    if os.environ.get("CARACAL_BENCH_PG", "on") == "off":
        yield None
        return
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            name = f"caracal_bench_{secrets.token_hex(6)}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # any failure means "no PostgreSQL here"
        yield None
        return
    try:
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the benchmark ----------------------------------------------------------------------------
def _time(bench: str, metric: str, runs: list[Measured], target: float | None) -> Result:
    seconds = [m.seconds for m in runs]
    walls = [m.wall for m in runs]
    return Result(
        bench,
        metric,
        median(seconds) * 1e9,
        "ns",
        target=target,
        notes=[
            f"{len(runs)} run(s): {', '.join(f'{s:.1f}' for s in seconds)} s; whole child "
            f"process (start-up, imports) median {median(walls):.1f} s"
        ],
    )


def _rss(bench: str, metric: str, runs: list[Measured], target: float | None) -> Result:
    own = [m.rss_mb for m in runs]
    workers = [m.workers_rss_mb for m in runs]
    total = [m.total_rss_mb for m in runs]
    note = f"{len(runs)} run(s), process peak (VmHWM): {', '.join(f'{v:.0f}' for v in own)} MB"
    if any(workers):
        note += (
            f"; its ledger-verify worker's peak: {', '.join(f'{v:.0f}' for v in workers)} MB; "
            f"largest sampled sum of the two at one instant: "
            f"{', '.join(f'{m.tree_mb:.0f}' for m in runs)} MB"
        )
    return Result(bench, metric, round(median(total), 1), "MB", target=target, notes=[note])


def _check_restore(measured: Measured, expected: dict[str, Any], label: str) -> None:
    tables = measured.result["tables"]
    for table in ("mandates", "ledger_events"):
        if tables.get(table) != expected["tables"].get(table):
            raise RuntimeError(
                f"{label}: restored {tables.get(table)} {table}, the archive holds "
                f"{expected['tables'].get(table)}"
            )


def bench_backup(sizes: Sizes) -> list[Result]:
    """`backup create` (plain and locked) of a workspace with 100,000 mandates and 1,000,000
    ledger events, and `backup restore` of each archive into SQLite (and PostgreSQL), each in
    a fresh child process: wall time, peak RSS, archive size."""
    from caracal.services.workspaces import WorkspaceManager

    name = "backup"
    results: list[Result] = []
    with temporary_home() as root:
        data = dataset(sizes, Path(os.environ["CARACAL_HOME"]))
        archives = root / "archives"
        archives.mkdir()
        env = {LOCK_ENV: secrets.token_urlsafe(24)}  # 32 characters
        kinds = (("plain", False), ("locked", True))
        baseline = run_child("baseline", {})
        created: dict[str, list[Measured]] = {k: [] for k, _ in kinds}
        latest: dict[str, tuple[Path, Measured]] = {}
        for run in range(sizes.backup_runs):
            for kind, is_locked in kinds:
                out = archives / f"{kind}-{run}.tar.gz{'.locked' if is_locked else ''}"
                params = {"workspace": WORKSPACE, "output": str(out), "locked": is_locked}
                measured = run_child("create", {**params, "label": kind}, env)
                if measured.result["tables"]["mandates"] != data.mandates:
                    raise RuntimeError(f"create {kind}: {measured.result['tables']}")
                created[kind].append(measured)
                if kind in latest:
                    latest[kind][0].unlink()
                latest[kind] = (out, measured)
        workspace_note = (
            f"{data.mandates:,} mandates ({data.revoked:,} revoked), {data.events:,} ledger "
            f"events, {data.principals} principals"
        )
        rss_note = f"a child that only imports Caracal peaks at {baseline.rss_mb:.0f} MB"
        for kind, _ in kinds:
            runs = created[kind]
            results.append(_time(name, f"create, {kind} archive", runs, TIME_TARGET_NS))
            results[-1].notes.insert(0, workspace_note)
            results.append(_rss(name, f"create, {kind}: peak RSS", runs, RSS_TARGET_MB))
            results[-1].notes.append(rss_note)
            sizes_mb = [m.result["size"] / 1e6 for m in runs]
            results.append(Result(name, f"archive size, {kind}", round(median(sizes_mb), 1), "MB"))
        manager = WorkspaceManager()
        results += _restores(name, sizes, kinds, latest, env, manager, None)
        with scratch_postgres() as url:
            if url is not None:
                results += _restores(name, sizes, kinds, latest, env, manager, url)
        results[0].notes.extend(data.notes)
        if url is None:
            results[0].notes.append(
                "restore into PostgreSQL skipped: unreachable (or CARACAL_BENCH_PG=off)"
            )
    return results


def _restores(
    name: str,
    sizes: Sizes,
    kinds: tuple[tuple[str, bool], ...],
    latest: dict[str, tuple[Path, Measured]],
    env: dict[str, str],
    manager: Any,
    store_url: str | None,
) -> list[Result]:
    into = "PostgreSQL" if store_url else "SQLite"
    target_t = None if store_url else TIME_TARGET_NS
    target_m = None if store_url else RSS_TARGET_MB
    restored: dict[str, list[Measured]] = {k: [] for k, _ in kinds}
    for run in range(sizes.backup_runs):
        for kind, is_locked in kinds:
            archive, created = latest[kind]
            ws = f"restored-{into.lower()}-{kind}-{run}"
            params = {"archive": str(archive), "name": ws, "locked": is_locked, "label": kind}
            if store_url:
                params["store_url"] = store_url
            measured = run_child("restore", params, env)
            _check_restore(measured, created.result, f"restore {kind} into {into}")
            restored[kind].append(measured)
            manager.delete(ws, backup_first=False)
    out = []
    for kind, _ in kinds:
        runs = restored[kind]
        out.append(_time(name, f"restore {kind} archive into {into}", runs, target_t))
        out.append(_rss(name, f"restore {kind} into {into}: peak RSS", runs, target_m))
    return out


BENCHMARKS = {"backup": bench_backup}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], json.loads(sys.argv[2]))))
