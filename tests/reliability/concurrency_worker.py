"""One process of the concurrency proving ground (driven by `test_concurrency.py`).

    python -m tests.reliability.concurrency_worker --role issuer --name issuer-0 \
        --workspace proving --seconds 15 --dir RUN_DIR

Each process opens its own `Caracal` facade (its own engine and connections) after it starts,
writes `RUN_DIR/ready-NAME`, waits for `RUN_DIR/go` (the common start time), works for
`--seconds`, and writes what it did to `RUN_DIR/NAME.json`:

- an **issuer** issues root mandates (alice → orch/orch2, delegation depth 1), delegates some
  of them (→ w1/w2) and validates its own mandates, old and new, through the facade;
- the **revoker** lists active mandates from the store (all issued by the issuers: the newest,
  or a random page) and revokes a random one, with every descendant.

Every exception a facade call raises is recorded, never retried or hidden: the parent fails on
any. The only expected refusals are a delegation from a mandate the revoker has revoked
(`SOURCE_INVALID`) and a validation of one (`MANDATE_REVOKED`, or `DELEGATION_CHAIN_INVALID`
for a child of one); the parent checks afterwards that each of those was indeed revoked.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from caracal.core.errors import DeniedError
from caracal.services.facade import Caracal
from tests.support.files import write_atomically

T = TypeVar("T")
P = ParamSpec("P")

RESOURCE = "provider:github:resource:repos"
ACTION = "provider:github:action:read"
ISSUER = "alice"
ROOT_SUBJECTS = ("orch", "orch2")
CHILD_SUBJECTS = ("w1", "w2")
PRINCIPALS = (
    ("human", "alice"),
    ("orchestrator", "orch"),
    ("orchestrator", "orch2"),
    ("worker", "w1"),
    ("worker", "w2"),
)
# Denials an issuer may legitimately see: the revoker got there first.
REVOKED_CODES = ("MANDATE_REVOKED", "DELEGATION_CHAIN_INVALID")
READY_TIMEOUT_S = 120.0
MAX_ERRORS_KEPT = 50


def populate(app: Caracal) -> None:
    """The workspace every worker shares: one provider, five principals, four policies."""
    from caracal.core.providers import ProviderAction, ProviderResource, ProviderSpec

    app.providers.add(
        ProviderSpec(
            "github",
            "https://api.github.com",
            resources=(ProviderResource("repos"),),
            actions=(ProviderAction("repos", "read"),),
        )
    )
    for kind, name in PRINCIPALS:
        app.principals.register(kind, name)
    for _, name in PRINCIPALS[1:]:
        app.policies.create(
            name, "1h", ["provider:github:resource:*"], ["provider:github:action:*"], 1
        )


@dataclass
class Report:
    """What one worker did; written as JSON for the parent."""

    name: str
    role: str
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    # Latency per kind of facade call, seconds: [p50, p99, max].
    latency: dict[str, list[float]] = field(default_factory=dict)
    error_count: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # issuer: every mandate it created
    revoked: list[str] = field(default_factory=list)  # revoker: newly revoked, cascade included
    targets: list[str] = field(default_factory=list)  # revoker: the mandates it picked
    # issuer: (mandate id, reason code) of every refusal it saw
    denied: list[list[str]] = field(default_factory=list)
    _samples: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def call(self, kind: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """Run one facade call, timing it; an exception is recorded and yields None."""
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except DeniedError as refusal:
            if kind == "delegate" and refusal.reason_code == "SOURCE_INVALID":
                raise  # expected when the source was revoked; the caller records it
            self._error(kind, refusal)
        except Exception as exc:
            self._error(kind, exc)
        finally:
            self._samples.setdefault(kind, []).append(time.perf_counter() - started)
        return None

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def _error(self, kind: str, exc: BaseException) -> None:
        self.error_count += 1
        self.count(f"{kind}_error")
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(
                {
                    "op": kind,
                    "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                    "message": str(exc)[:500],
                    "traceback": "".join(traceback.format_exception(exc))[-3000:],
                }
            )

    def anomaly(self, kind: str, message: str) -> None:
        """Something wrong that did not raise (e.g. an unexpected denial)."""
        self.error_count += 1
        self.count(f"{kind}_error")
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"op": kind, "type": "anomaly", "message": message})

    def to_json(self) -> dict[str, Any]:
        for kind, samples in self._samples.items():
            ordered = sorted(samples)
            self.latency[kind] = [
                ordered[len(ordered) // 2],
                ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                ordered[-1],
            ]
        data = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return data


@dataclass
class Held:
    id: str
    token: str
    root: bool


def run_issuer(app: Caracal, report: Report, deadline: float, rng: random.Random) -> None:
    held: list[Held] = []  # every mandate this worker created, oldest first
    while time.monotonic() < deadline:
        roll = rng.random()
        roots = [h for h in held[-50:] if h.root]
        if roll < 0.25 or not held:
            issued = report.call(
                "issue",
                app.mandates.issue,
                ISSUER,
                rng.choice(ROOT_SUBJECTS),
                [RESOURCE],
                [ACTION],
                "30m",
                delegation_depth=1,
            )
            if issued is not None:
                report.count("issue")
                report.issued.append(issued.id)
                held.append(Held(issued.id, issued.token, True))
        elif roll < 0.35 and roots:
            source = rng.choice(roots)
            try:
                child = report.call(
                    "delegate",
                    app.mandates.delegate,
                    source.id,
                    rng.choice(CHILD_SUBJECTS),
                    [RESOURCE],
                    [ACTION],
                    "10m",
                )
            except DeniedError:  # SOURCE_INVALID: the revoker revoked the source
                report.count("delegate_refused")
                report.denied.append([source.id, "SOURCE_INVALID"])
                continue
            if child is not None:
                report.count("delegate")
                report.issued.append(child.id)
                held.append(Held(child.id, child.token, False))
        else:
            # Mostly recent mandates (still live), sometimes any (likely revoked by now).
            pick = rng.choice(held[-20:] if rng.random() < 0.7 else held)
            decision = report.call(
                "validate", app.validation.validate, ACTION, RESOURCE, token=pick.token
            )
            if decision is None:
                continue
            report.count("validate")
            if decision.allowed:
                report.count("validate_allowed")
            elif decision.reason_code in REVOKED_CODES:
                report.count("validate_denied")
                report.denied.append([pick.id, decision.reason_code])
            else:
                report.anomaly(
                    "validate",
                    f"{pick.id} denied {decision.reason_code}: {decision.reason}",
                )


def run_revoker(app: Caracal, report: Report, deadline: float, rng: random.Random) -> None:
    while time.monotonic() < deadline:
        # Half the time among the newest (what issuers are delegating from right now, the
        # likeliest race), half the time anywhere among the active ones.
        offset = 0
        if rng.random() < 0.5:
            active = report.call("list", app.mandates.count, status="active")
            if active is None:
                continue
            offset = rng.randrange(max(1, active - 100 + 1))
        rows = report.call("list", app.mandates.listing, status="active", limit=100, offset=offset)
        if rows is None:
            continue
        report.count("list")
        if not rows:
            time.sleep(0.005)
            continue
        target = str(rng.choice(rows)["id"])
        result = report.call("revoke", app.mandates.revoke, target, reason="proving ground")
        if result is not None:
            report.count("revoke")
            report.count("revoked_mandates", len(result.revoked))
            report.targets.append(target)
            report.revoked.extend(result.revoked)


def _wait_for(path: Path, timeout: float) -> float:
    """The start time the parent wrote to `path`."""
    limit = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > limit:
            raise SystemExit(f"no start signal at {path} after {timeout:.0f} s")
        time.sleep(0.005)
    return float(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--role", choices=("issuer", "revoker"), required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    report = Report(args.name, args.role)
    rng = random.Random(args.seed)
    app = report.call("open", Caracal.open, args.workspace, actor=f"proving:{args.name}")
    try:
        if app is not None:
            # Open the store and read the workspace id now, not inside the measured window.
            report.call("open", lambda: app.workspace_id)
        (args.dir / f"ready-{args.name}").touch()
        start_at = _wait_for(args.dir / "go", READY_TIMEOUT_S)
        time.sleep(max(0.0, start_at - time.time()))
        started = time.monotonic()
        if app is not None:
            work = run_issuer if args.role == "issuer" else run_revoker
            work(app, report, started + args.seconds, rng)
        report.seconds = time.monotonic() - started
    finally:
        if app is not None:
            app.close()
        write_atomically(args.dir / f"{args.name}.json", json.dumps(report.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
