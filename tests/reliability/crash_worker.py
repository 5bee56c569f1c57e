"""The child processes that tests/reliability/test_crash.py kills with SIGKILL.

    python -m tests.reliability.crash_worker traffic --workspace W --acks FILE --seed N
    python -m tests.reliability.crash_worker cli --acks FILE -- backup create ...
    python -m tests.reliability.crash_worker spawner

`traffic` loops issuing, delegating, validating and revoking mandates (plus the odd key
rotation, `config set` and Flow-state save) through the facade, as the CLI does, until it is
killed. Before each operation it appends a `begin` line to the acknowledgement file; after the
facade call has returned it appends an `ack` line saying what must now hold, and fsyncs it.
Whatever the file acknowledges must survive any kill.

`cli` runs one `caracal` command through the CLI's own entry point (`caracal.cli.main.run`),
between a `begin` and an `end` line.

`spawner` imports Caracal once, then forks a fresh child per request (JSON lines on stdin:
`{"spawn": [ARGS...], "log": PATH}` answers `{"pid": N}`, `{"reap": N}` waits for that child and
answers `{"status": S}`). Each child is a real process killed with a real SIGKILL; forking only
saves the ~0.8 s of imports a fresh interpreter pays, so hundreds of kills fit in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROVIDER = "github"
RESOURCES = ("provider:github:resource:repos", "provider:github:resource:issues")
ACTIONS = (
    "provider:github:action:read",
    "provider:github:action:write",
    "provider:github:action:comment",
)
# The catalog's declared pairs (test_crash.py adds the provider): a mandate grants pairs.
PAIRS = (
    (RESOURCES[0], ACTIONS[0]),
    (RESOURCES[0], ACTIONS[1]),
    (RESOURCES[1], ACTIONS[2]),
)
NOT_GRANTED = "provider:github:action:admin"  # never in any mandate: always out of scope
# name -> kind; alice issues, the others hold (and pass on) mandates.
PRINCIPALS = {
    "alice": "human",
    "orch1": "orchestrator",
    "orch2": "orchestrator",
    "w1": "worker",
    "w2": "worker",
    "svc": "service",
}
GRANTS = {  # who may delegate to whom (caracal.core.principals)
    "orchestrator": ("orch1", "orch2", "w1", "w2", "svc"),
    "worker": ("w1", "w2", "svc"),
}
POLICY_DEPTH = 3
ISSUE_TTL, DELEGATE_TTL = "12h", "6h"
WEIGHTS = {
    "validate": 35,
    "issue": 25,
    "delegate": 20,
    "revoke": 10,
    "rotate": 4,
    "config": 3,
    "flow": 3,
}
CONFIG_KEY = "validation.cache_size"
RECENT_LIMIT = 20
MAX_SECONDS = 120.0  # a child nobody killed stops by itself (exit 3): no orphans


# ---- the acknowledgement file ------------------------------------------------------------------
class AckLog:
    """JSON lines appended with one write each; `ack` lines are fsynced before returning."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # A line cut short by a kill was never acknowledged: drop it before appending.
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            os.truncate(path, data.rfind(b"\n") + 1)

    def mark(self, **fields: Any) -> None:
        os.write(self.fd, _line(fields))

    def ack(self, **fields: Any) -> None:
        os.write(self.fd, _line({"e": "ack", **fields}))
        os.fsync(self.fd)


def _line(fields: dict[str, Any]) -> bytes:
    return (json.dumps({**fields, "t": time.time()}, separators=(",", ":")) + "\n").encode()


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete line (a kill can only cut the last one short)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


# ---- what the traffic child knows from earlier runs ---------------------------------------------
class Known:
    """Acknowledged mandates, rebuilt from the file. A mandate whose revocation began without
    an acknowledgement may or may not be revoked: it is used no more."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.live: dict[str, dict[str, Any]] = {}
        self.revoked: list[str] = []
        self.children: dict[str, list[str]] = {}
        for line in lines:
            if line["e"] == "ack" and line["op"] in ("issue", "delegate"):
                self.add(line)
            elif line["e"] == "begin" and line["op"] == "revoke":
                self.drop(line["target"])
            elif line["e"] == "ack" and line["op"] == "revoke":
                self.revoked.extend(line["revoked"])

    def add(self, mandate: dict[str, Any]) -> None:
        self.live[mandate["id"]] = mandate
        if mandate.get("parent"):
            self.children.setdefault(mandate["parent"], []).append(mandate["id"])

    def drop(self, mandate_id: str) -> None:
        pending = [mandate_id]
        while pending:
            current = pending.pop()
            self.live.pop(current, None)
            pending.extend(self.children.get(current, ()))


def _pairs(rng: random.Random, pairs: Any) -> tuple[list[str], list[str], list[list[str]]]:
    """Some of `pairs`: the resources, the actions and the pairs (the grants) they make."""
    chosen = sorted(tuple(p) for p in rng.sample(list(pairs), rng.randint(1, len(pairs))))
    res = sorted({r for r, _ in chosen})
    act = sorted({a for _, a in chosen})
    granted = [[r, a] for r, a in PAIRS if r in res and a in act]
    return res, act, granted


class Traffic:
    def __init__(self, app: Any, log: AckLog, known: Known, rng: random.Random) -> None:
        self.app, self.log, self.known, self.rng = app, log, known, rng
        self.ops: dict[str, Callable[[], None]] = {
            "validate": self.validate,
            "issue": self.issue,
            "delegate": self.delegate,
            "revoke": self.revoke,
            "rotate": self.rotate,
            "config": self.config,
            "flow": self.flow,
        }

    def step(self) -> None:
        names, weights = zip(*WEIGHTS.items(), strict=True)
        op = self.rng.choices(names, weights)[0]
        if not self.known.live and op in ("validate", "delegate", "revoke"):
            op = "issue"
        self.ops[op]()

    def _pick(self) -> dict[str, Any]:
        return self.known.live[self.rng.choice(list(self.known.live))]

    def issue(self) -> None:
        subject = self.rng.choice([n for n in PRINCIPALS if n != "alice"])
        depth = 0 if subject == "svc" else self.rng.randint(0, POLICY_DEPTH)
        res, act, granted = _pairs(self.rng, PAIRS)
        self.log.mark(e="begin", op="issue", subject=subject)
        issued = self.app.mandates.issue(
            "alice", subject, res, act, ISSUE_TTL, delegation_depth=depth
        )
        mandate = self._acked("issue", issued.id, subject, res, act, depth, None, granted)
        self.known.add(mandate)

    def delegate(self) -> None:
        sources = [
            m
            for m in self.known.live.values()
            if m["depth"] >= 1 and PRINCIPALS[m["subject"]] in GRANTS
        ]
        if not sources:
            self.issue()
            return
        source = self.rng.choice(sources)
        target = self.rng.choice(GRANTS[PRINCIPALS[source["subject"]]])
        res, act, granted = _pairs(self.rng, source["pairs"])
        self.log.mark(e="begin", op="delegate", source=source["id"], subject=target)
        issued = self.app.mandates.delegate(source["id"], target, res, act, DELEGATE_TTL)
        depth = source["depth"] - 1
        self.known.add(
            self._acked("delegate", issued.id, target, res, act, depth, source["id"], granted)
        )

    def _acked(
        self,
        op: str,
        mandate_id: str,
        subject: str,
        res: list[str],
        act: list[str],
        depth: int,
        parent: str | None,
        granted: list[list[str]],
    ) -> dict[str, Any]:
        mandate = {
            "id": mandate_id,
            "subject": subject,
            "resources": res,
            "actions": act,
            "pairs": granted,
            "depth": depth,
            "parent": parent,
        }
        self.log.ack(op=op, **mandate)
        return mandate

    def validate(self) -> None:
        roll = self.rng.random()
        if roll < 0.1 and self.known.revoked:
            mandate_id = self.rng.choice(self.known.revoked)
            action, resource, expected = ACTIONS[0], RESOURCES[0], "MANDATE_REVOKED"
        else:
            mandate = self._pick()
            resource, action = self.rng.choice(mandate["pairs"])
            mandate_id, expected = mandate["id"], "ALLOWED"
            if roll < 0.25:
                action, expected = NOT_GRANTED, "ACTION_OUT_OF_SCOPE"
        self.log.mark(e="begin", op="validate", target=mandate_id)
        decision = self.app.validation.validate(action, resource, mandate_id=mandate_id)
        self.log.ack(
            op="validate",
            id=mandate_id,
            action=action,
            resource=resource,
            got=decision.reason_code,
            expected=expected,
        )

    def revoke(self) -> None:
        roots = [m for m in self.known.live.values() if m["parent"] is None]
        pool = roots if roots and self.rng.random() < 0.5 else list(self.known.live.values())
        target = self.rng.choice(pool)["id"]
        self.log.mark(e="begin", op="revoke", target=target)
        self.known.drop(target)  # from now on its state is not known for sure
        result = self.app.mandates.revoke(target, reason="crash test")
        self.log.ack(op="revoke", target=target, revoked=result.revoked, already=result.already)
        self.known.revoked.extend(result.revoked)

    def rotate(self) -> None:
        name = self.rng.choice(list(PRINCIPALS))
        self.log.mark(e="begin", op="rotate", principal=name)
        rotation = self.app.principals.rotate_key(name)
        self.log.ack(op="rotate", principal=name, kid=rotation.new_kid)

    def config(self) -> None:
        value = self.rng.randint(1_000, 50_000)
        self.log.mark(e="begin", op="config", value=value)
        self.app.settings.set_value(CONFIG_KEY, str(value))
        self.log.ack(op="config", value=value)

    def flow(self) -> None:
        """What Flow does when it remembers an action (FlowContext.remember)."""
        from caracal.home.flow_state import read_state, write_state

        action = f"crash-test {self.rng.getrandbits(48):012x}"
        self.log.mark(e="begin", op="flow", action=action)
        state = read_state(self.app.paths.flow_state)
        recent = [r for r in state.get("recent_actions", []) if isinstance(r, dict)]
        state["recent_actions"] = [{"at": int(time.time()), "action": action}, *recent][
            :RECENT_LIMIT
        ]
        write_state(self.app.paths.flow_state, state)
        self.log.ack(op="flow", action=action)


def run_traffic(workspace: str, acks: Path, seed: int, max_seconds: float) -> int:
    from caracal.services.facade import Caracal

    log = AckLog(acks)
    log.mark(e="start", pid=os.getpid())
    known = Known(read_lines(acks))
    deadline = time.monotonic() + max_seconds
    with Caracal.open(workspace) as app:
        traffic = Traffic(app, log, known, random.Random(seed))
        while time.monotonic() < deadline:
            traffic.step()
    return 3


def run_cli(acks: Path, args: list[str]) -> int:
    from caracal.cli.main import run

    log = AckLog(acks)
    log.mark(e="begin", op="cli", args=args)
    code = run(args)
    log.ack(op="cli", code=code)
    return code


# ---- the fork server ------------------------------------------------------------------------------
def _warm_up() -> None:
    """Import what the children use, so that a forked child starts at once."""
    import caracal.cli.main
    import caracal.home.flow_state
    import caracal.services.backup.restore
    import caracal.services.backup.service
    import caracal.services.config_service
    import caracal.services.facade
    import caracal.services.ledger
    import caracal.services.mandates
    import caracal.services.principals
    import caracal.services.providers
    import caracal.services.signing
    import caracal.services.validation
    import caracal.store.migrations  # noqa: F401


def serve_forks() -> int:
    _warm_up()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for raw in sys.stdin:
        request = json.loads(raw)
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                _child(request["spawn"], request["log"])
            answer: dict[str, Any] = {"pid": pid}
        else:
            _, status = os.waitpid(request["reap"], 0)
            answer = {"status": os.waitstatus_to_exitcode(status)}
        print(json.dumps(answer), flush=True)
    return 0


def _child(args: list[str], log_path: str) -> None:
    """In the forked child: never touch the server's pipes; exit without its cleanup."""
    code = 1
    try:
        sink = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        code = main(args)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ---- entry point -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crash_worker")
    sub = parser.add_subparsers(dest="mode", required=True)
    traffic = sub.add_parser("traffic")
    traffic.add_argument("--workspace", required=True)
    traffic.add_argument("--acks", type=Path, required=True)
    traffic.add_argument("--seed", type=int, required=True)
    traffic.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    cli = sub.add_parser("cli")
    cli.add_argument("--acks", type=Path, required=True)
    cli.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("spawner")
    options = parser.parse_args(argv)
    if options.mode == "traffic":
        return run_traffic(options.workspace, options.acks, options.seed, options.max_seconds)
    if options.mode == "cli":
        args = options.args[1:] if options.args[:1] == ["--"] else options.args
        return run_cli(options.acks, args)
    return serve_forks()


if __name__ == "__main__":
    sys.exit(main())
