"""What tests/reliability/test_crash.py needs besides the tests: starting and killing child
processes, reading what their acknowledgement files promise, and checking a workspace against
those promises after a kill."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from tests.reliability.crash_worker import ACTIONS, CONFIG_KEY, RESOURCES

ROOT = Path(__file__).resolve().parents[2]
WORKER = "tests.reliability.crash_worker"
CHECK_ACTION, CHECK_RESOURCE = ACTIONS[0], RESOURCES[0]
SAMPLE = 25  # older acknowledged mandates re-validated after every kill


# ---- child processes -------------------------------------------------------------------------------
@dataclass
class Child:
    pid: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None  # a fresh interpreter; None when forked


class Launcher:
    """Starts children forked by the worker's spawner, or (`fresh=True`) as a new interpreter
    running `python -m tests.reliability.crash_worker ...`. Children inherit os.environ as it
    is when the launcher is made (CARACAL_HOME, CARACAL_STORE_URL, ...)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.running: dict[int, Child] = {}
        self.server = subprocess.Popen(
            [sys.executable, "-m", WORKER, "spawner"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"the spawner exited ({self.server.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.server.stdin is not None
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        return self._answer()

    def start(self, args: list[str], *, fresh: bool = False) -> Child:
        log = self.logs / f"child-{self.count:04d}.log"
        self.count += 1
        if fresh:
            with log.open("ab") as sink:
                proc = subprocess.Popen(
                    [sys.executable, "-m", WORKER, *args],
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            child = Child(proc.pid, log, proc)
        else:
            child = Child(self._ask({"spawn": args, "log": str(log)})["pid"], log)
        self.running[child.pid] = child
        return child

    def kill(self, child: Child) -> int:
        """SIGKILL, then wait until the process is gone; its exit status (-9 when killed)."""
        os.kill(child.pid, signal.SIGKILL)
        return self.reap(child)

    def reap(self, child: Child) -> int:
        self.running.pop(child.pid, None)
        if child.proc is not None:
            return child.proc.wait(timeout=60)
        status: int = self._ask({"reap": child.pid})["status"]
        return status

    def close(self) -> None:
        """Kill whatever a failed test left running, then stop the spawner."""
        for child in list(self.running.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            self.reap(child)
        if self.server.stdin is not None:
            self.server.stdin.close()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


def wait_for_growth(path: Path, size: int, timeout: float = 60.0) -> None:
    """Until the file is longer than `size` (a child wrote its first line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.stat().st_size > size:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    raise AssertionError(f"no child wrote to {path} within {timeout}s")


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def traffic_kill_delay(rng: random.Random, warmup: float) -> float:
    """Seconds after the child's first line. A new child spends `warmup` opening the
    workspace and on its first (cold) operation, then runs one every few milliseconds: aim
    at both."""
    if rng.random() < 0.2:
        return rng.uniform(0.0, warmup)
    return warmup + rng.uniform(0.0, 0.3)


def wait_for_backends_to_go(store_url: str, timeout: float = 10.0) -> None:
    """A killed client's PostgreSQL backend finishes (commits or rolls back) on its own time;
    checking before it has gone could race with a commit still in progress."""
    import psycopg

    dsn = store_url.replace("postgresql+psycopg://", "postgresql://", 1)
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.005)
    raise AssertionError("a killed child's PostgreSQL connection did not go away")


# ---- what the acknowledgement file promises ------------------------------------------------------
@dataclass
class Promises:
    """Read incrementally from the traffic children's acknowledgement file."""

    path: Path
    config_ok: set[Any]
    flow_ok: set[str | None] = field(default_factory=lambda: {None})
    offset: int = 0
    last: dict[str, Any] | None = None
    mandates: dict[str, dict[str, Any]] = field(default_factory=dict)
    surely_revoked: set[str] = field(default_factory=set)
    revoke_begun: set[str] = field(default_factory=set)
    validations: Counter[str] = field(default_factory=Counter)
    rotations: list[dict[str, Any]] = field(default_factory=list)
    acked: Counter[str] = field(default_factory=Counter)
    fresh: list[str] = field(default_factory=list)  # mandates acknowledged since the last check
    warmups: list[float] = field(default_factory=list)  # a child's start to its first ack
    _started: float | None = None
    wrong_decisions: list[dict[str, Any]] = field(default_factory=list)

    def read(self) -> None:
        data = self.path.read_bytes()[self.offset :]
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for raw in complete.splitlines():
            self._feed(json.loads(raw))

    def warmup(self) -> float:
        """The median warm-up of recent children (a guess before there are any)."""
        recent = sorted(self.warmups[-21:])
        return recent[len(recent) // 2] if recent else 0.15

    def _feed(self, line: dict[str, Any]) -> None:
        self.last = line
        if line["e"] == "start":
            self._started = line["t"]
        elif line["e"] == "begin":
            self._begin(line)
        elif line["e"] == "ack":
            if self._started is not None:
                self.warmups.append(line["t"] - self._started)
                self._started = None
            self.acked[line["op"]] += 1
            self._ack(line)

    def _begin(self, line: dict[str, Any]) -> None:
        if line["op"] == "revoke":
            self.revoke_begun.add(line["target"])
        elif line["op"] == "config":
            self.config_ok.add(line["value"])
        elif line["op"] == "flow":
            self.flow_ok.add(line["action"])

    def _ack(self, line: dict[str, Any]) -> None:
        op = line["op"]
        if op in ("issue", "delegate"):
            self.mandates[line["id"]] = line
            self.fresh.append(line["id"])
        elif op == "revoke":
            self.surely_revoked.update([line["target"], *line["revoked"]])
        elif op == "validate":
            self.validations[line["id"]] += 1
            if line["got"] != line["expected"]:
                self.wrong_decisions.append(line)
        elif op == "rotate":
            self.rotations.append(line)
        elif op == "config":
            self.config_ok = {line["value"]}
        elif op == "flow":
            self.flow_ok = {line["action"]}

    def in_flight(self) -> dict[str, Any] | None:
        """The operation a kill interrupted, if the last line is its `begin`."""
        return self.last if self.last is not None and self.last["e"] == "begin" else None

    def chain(self, mandate_id: str) -> Iterable[str]:
        current: str | None = mandate_id
        while current is not None:
            yield current
            current = self.mandates[current]["parent"] if current in self.mandates else None

    def expected(self, mandate_id: str) -> set[str]:
        """Revoked for sure, maybe revoked (a revocation began, unacknowledged), or allowed."""
        chain = list(self.chain(mandate_id))
        if any(m in self.surely_revoked for m in chain):
            return {"MANDATE_REVOKED"}
        if any(m in self.revoke_begun for m in chain):
            return {"ALLOWED", "MANDATE_REVOKED"}
        return {"ALLOWED"}


# ---- checking a workspace against the promises ---------------------------------------------------
def check_files(root: Path, promises: Promises) -> int:
    """Nothing truncated or half-written; the number of stray temp files a kill left behind."""
    from caracal.core.keys import load_public
    from caracal.vault.master_key import check_value

    value = config_value(root)
    assert value in promises.config_ok, (value, promises.config_ok)
    top = flow_top(root)
    assert top in promises.flow_ok, (top, promises.flow_ok)
    keys = root / "keys"
    key_text = (keys / "master.key").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", key_text), "master.key is damaged"
    assert (keys / "master.check").read_text().strip() == check_value(bytes.fromhex(key_text))
    assert (keys / "master.source").read_text().strip() == "key-file"
    assert re.fullmatch(r"[0-9a-f-]{36}\n", (keys / "master.account").read_text())
    pins = sorted(keys.glob("ledger-*.pub.pem"))
    assert pins, "no ledger key pin"
    for pin in pins:
        load_public(pin.read_text())
    return sum(1 for p in root.rglob(".*.tmp"))


class Judge:
    """Judges a workspace after each kill of its traffic child, against what the
    acknowledgement file promises, and keeps the figures."""

    def __init__(self, name: str, root: Path, promises: Promises, rng: random.Random) -> None:
        self.name, self.root, self.promises, self.rng = name, root, promises, rng
        self.kills = 0
        self.where: Counter[str] = Counter()  # start-up / operation / between operations
        self.interrupted: Counter[str] = Counter()  # the operation a kill landed in
        self.committed: Counter[bool] = Counter()  # ... had it committed?
        self.decisions = 0
        self.strays = 0
        self.own: set[str] = set()  # mandates the checks issue themselves
        self.unacked_mandates = 0  # committed, but their acknowledgement never written
        self.unacked_validations: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()  # signing keys per principal, as last seen

    def start(self, launcher: Launcher, *, fresh: bool) -> Child:
        """A traffic child on the workspace, once it has written its first line."""
        from caracal.services.facade import Caracal

        if not self.keys:
            with Caracal.open(self.name) as app:
                self.keys = key_counts(app)
        before = size_of(self.promises.path)
        args = ["traffic", "--workspace", self.name, "--acks", str(self.promises.path)]
        child = launcher.start([*args, "--seed", str(self.rng.getrandbits(32))], fresh=fresh)
        wait_for_growth(self.promises.path, before)
        return child

    def after_kill(self) -> None:
        from caracal.services.facade import Caracal

        self.kills += 1
        promises = self.promises
        promises.read()
        flight = promises.in_flight()
        if flight is not None:
            self.where["operation"] += 1
            self.interrupted[flight["op"]] += 1
        else:
            self.where["start-up" if (promises.last or {}).get("e") == "start" else "between"] += 1
        self.strays = check_files(self.root, promises)
        older = sorted(promises.mandates)
        to_decide = {*promises.fresh, *self.rng.sample(older, min(SAMPLE, len(older)))}
        with Caracal.open(self.name) as app:
            committed = self._settle(app, flight, to_decide) if flight is not None else None
            unacked = self.inspect(app, to_decide)
            if flight is not None:
                if flight["op"] in ("issue", "delegate"):
                    committed = unacked > self.unacked_mandates
                self.committed[bool(committed)] += 1
            self.unacked_mandates = unacked
            self.own.add(issue_and_validate(app))
            self.keys = key_counts(app)
        promises.fresh.clear()

    def final(self) -> None:
        """After the last kill: every acknowledged mandate decides as promised."""
        from caracal.services.facade import Caracal

        with Caracal.open(self.name) as app:
            self.inspect(app, self.promises.mandates)

    def _settle(self, app: Any, flight: dict[str, Any], to_decide: set[str]) -> bool | None:
        """The interrupted operation's outcome is fixed now that nobody writes: did it
        commit? The promises narrow to what is there."""
        promises, op = self.promises, flight["op"]
        if op == "revoke":
            target = flight["target"]
            revoked = app.mandates.get(target)["revoked_at"] is not None
            if revoked:
                promises.surely_revoked.add(target)
            promises.revoke_begun.discard(target)
            to_decide.update(m for m in promises.mandates if target in promises.chain(m))
            return bool(revoked)
        if op == "validate":
            target = flight["target"]
            known = promises.validations[target] + self.unacked_validations[target]
            committed = committed_validations(app, target) > known
            self.unacked_validations[target] += committed
            return committed
        if op == "rotate":
            return key_counts(app) != self.keys
        if op == "config":
            value = config_value(self.root)
            promises.config_ok = {value}
            return bool(value == flight["value"])
        if op == "flow":
            top = flow_top(self.root)
            promises.flow_ok = {top}
            return bool(top == flight["action"])
        return None  # issue, delegate: told by the count of unacknowledged mandates

    def inspect(self, app: Any, to_decide: Iterable[str]) -> int:
        """The store holds every promise (see `inspect_store`); the number of mandates that
        committed without an acknowledgement."""
        decided, unacked = inspect_store(app, self.promises, sorted(to_decide), self.own)
        self.decisions += decided
        return unacked

    def figures(self, label: str) -> str:
        acked = self.promises.acked
        return (
            f"CRASH {label}: {self.kills} kills survived, {self.where['operation']} during an "
            f"operation, {sum(acked.values()):,} acknowledged operations checked\n"
            f"  kills during start-up {self.where['start-up']}, between operations "
            f"{self.where['between']}; interrupted operations {dict(self.interrupted)}, of "
            f"which {self.committed[True]} had committed and {self.committed[False]} had not; "
            f"acknowledged {dict(acked)}; {len(self.promises.mandates):,} mandates, "
            f"{self.decisions:,} decisions re-checked; {self.unacked_mandates} mandates "
            f"committed but never acknowledged; {self.strays} stray temp files"
        )


def config_value(root: Path) -> Any:
    """The value the traffic child sets, as config.yaml holds it (which must parse)."""
    raw = yaml.safe_load((root / "config.yaml").read_text())
    assert isinstance(raw, dict), raw
    section, key = CONFIG_KEY.split(".")
    return raw.get(section, {}).get(key)


def flow_top(root: Path) -> str | None:
    """The newest recent action in flow_state.json (which must parse)."""
    state = json.loads((root / "flow_state.json").read_text())
    recent = state.get("recent_actions") or [{}]
    top = recent[0].get("action")
    return str(top) if top is not None else None


def inspect_store(
    app: Any, promises: Promises, to_decide: Iterable[str], own: set[str]
) -> tuple[int, int]:
    """`ledger verify` passes (and SQLite's own check); mandate rows and ledger events agree
    one for one (each change committed whole or not at all); a revoked mandate has no live
    child; every acknowledged mandate exists, and those in `to_decide` validate as promised;
    every acknowledged validation and key rotation is there. Returns (decisions checked,
    mandates committed without an acknowledgement)."""
    from caracal.store.schema import ledger_events, mandates, principal_keys, principals

    report = app.ledger.verify()
    assert report.ok, f"ledger verify failed after a kill: {report.problem}"
    with app.store.read(snapshot=True) as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA quick_check").scalar() == "ok"
        parent_of: dict[str, str | None] = {}
        revoked: set[str] = set()
        for row in conn.execute(select(mandates.c.id, mandates.c.parent_id, mandates.c.revoked_at)):
            parent_of[row.id] = row.parent_id
            if row.revoked_at is not None:
                revoked.add(row.id)
        created: Counter[str] = Counter()
        revocations: Counter[str] = Counter()
        validations: Counter[str] = Counter()
        query = select(ledger_events.c.type, ledger_events.c.mandate_id)
        for kind, mandate_id in conn.execute(query.where(ledger_events.c.mandate_id.is_not(None))):
            if kind in ("mandate.issued", "mandate.delegated"):
                created[mandate_id] += 1
            elif kind == "mandate.revoked":
                revocations[mandate_id] += 1
            elif kind.startswith("validation."):
                validations[mandate_id] += 1
        assert set(created) == set(parent_of), "mandate rows and their ledger events disagree"
        assert set(revocations) == revoked, "revoked rows and revocation events disagree"
        assert max([*created.values(), *revocations.values(), 1]) == 1, "an event was doubled"
        orphans = [m for m, parent in parent_of.items() if parent in revoked and m not in revoked]
        assert not orphans, f"mandates outlived their revoked parent: {orphans[:5]}"
        missing = set(promises.mandates) - set(parent_of)
        assert not missing, f"acknowledged mandates are gone: {sorted(missing)[:5]}"
        short = {m: n for m, n in promises.validations.items() if validations[m] < n}
        assert not short, f"acknowledged validations are missing from the ledger: {short}"
        owners = dict(
            conn.execute(
                select(principal_keys.c.kid, principals.c.name).join(
                    principals, principals.c.id == principal_keys.c.principal_id
                )
            ).all()
        )
        lost = [r for r in promises.rotations if owners.get(r["kid"]) != r["principal"]]
        assert not lost, f"acknowledged key rotations are lost: {lost[:3]}"
        decided = 0
        for mandate_id in to_decide:
            reason = _decide(app, conn, promises.mandates[mandate_id])
            expected = promises.expected(mandate_id)
            assert reason in expected, f"{mandate_id}: {reason}, promised {sorted(expected)}"
            decided += 1
    assert not promises.wrong_decisions, promises.wrong_decisions[:3]
    return decided, len(set(parent_of) - set(promises.mandates) - own)


def _decide(app: Any, conn: Any, mandate: dict[str, Any]) -> str:
    """The decision for the mandate's own first action and resource, recorded nowhere."""
    from caracal.services.authority_state import StoreAuthorityState
    from caracal.store import mandate_rows

    found = mandate_rows.state(conn, mandate["id"])
    if found is None:
        return "MANDATE_UNKNOWN"
    state = StoreAuthorityState(conn, app.workspace_id, app.signing)
    action, resource = mandate["actions"][0], mandate["resources"][0]
    decision = app.validator.validate(found[0], action, resource, state, app.clock())
    return str(decision.reason_code)


def key_counts(app: Any) -> Counter[str]:
    """Signing keys per principal id."""
    from caracal.store.schema import principal_keys

    with app.store.read() as conn:
        return Counter(owner for (owner,) in conn.execute(select(principal_keys.c.principal_id)))


def issue_and_validate(app: Any) -> str:
    """The workspace's secrets still open: alice's private key signs a new mandate."""
    issued = app.mandates.issue("alice", "orch1", [CHECK_RESOURCE], [CHECK_ACTION], "1h")
    decision = app.validation.validate(CHECK_ACTION, CHECK_RESOURCE, mandate_id=issued.id)
    assert decision.allowed, decision
    return str(issued.id)


def committed_validations(app: Any, mandate_id: str) -> int:
    from caracal.services.ledger_reads import LedgerFilter

    return int(app.ledger.count(LedgerFilter(types=["validation."], mandate_id=mandate_id)))


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
