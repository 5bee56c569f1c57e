"""Shared machinery of the fuzz tests ("proving ground"): budgets, the tally every target
prints, byte/text mutators, an isolated home and a realistic workspace built through the CLI.

Budgets: every target runs 10,000 generated cases or more, in CI too, except backup
archives (about 80 ms a case: a mutated archive is verified and restored), which run 1,000 in
the default (short) mode and 10,000 with `CARACAL_PROVING=long`. All of them together take
about ten minutes on a 2-core machine. Each module's docstring gives its numbers:

    target            short     long
    tokens            10,000    10,000
    /v1/authorize     10,000    10,000
    MCP gate          10,000    10,000
    config.yaml       10,000    10,000
    provider import   10,000    10,000
    shell lines       10,000    20,000
    CLI argv          10,000    10,000
    backup archives    1,000    10,000

Run with `-s` to see one `FUZZ <target>: N cases, 0 crashes, 0 false allows` line per target.

A crash is an uncaught exception, a case that takes more than 2 s of CPU time (this process
and the children it waited for) or more than 20 s of wall time, or a traceback (or "internal
error") reaching the user. CPU time is what the input costs; wall time on a loaded 2-core
machine also counts whatever else runs, so it only catches a case that hangs. A false allow is an authorisation given to input that
must not have it. The tally counts both; the test fails on the first one either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG = os.environ.get("CARACAL_PROVING") == "long"
CASE_CPU_SECONDS = 2.0
# Only a hang: a case waiting on a server process (whose CPU time is not ours) or stalled
# behind other work on a busy machine is not slow input.
CASE_WALL_SECONDS = 20.0
# Per test (pytest-timeout): generous, since one fuzz test runs thousands of cases.
TIMEOUT = pytest.mark.timeout(7200 if LONG else 900)


def budget(short: int, long: int = 10_000) -> int:
    """How many generated cases a target runs in this mode."""
    return long if LONG else short


def fuzz_settings(short: int, long: int = 10_000) -> settings:
    """Hypothesis settings for one target. Time is checked per case by `Tally.case` (around
    the code under test only, not the generation), so hypothesis' own deadline is off."""
    return settings(
        max_examples=budget(short, long),
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


class Shown:
    """For the objects fixtures hand to fuzz tests: hypothesis reports a failing case with its
    arguments, and these are shown by name rather than field by field."""

    def __repr__(self) -> str:
        return type(self).__name__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


class FalseAllow(AssertionError):
    """Input that must be refused was allowed."""


class SlowCase(AssertionError):
    """One case took more CPU time than CASE_CPU_SECONDS, or hung past CASE_WALL_SECONDS."""


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class Tally:
    """Per-target counts, printed as one `FUZZ ...` line when the module finishes."""

    target: str
    cases: int = 0
    crashes: int = 0
    false_allows: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    first: float | None = None  # when the first case started
    last: float = 0.0  # when the latest case ended
    slowest: float = 0.0  # the costliest case, in CPU seconds
    slowest_wall: float = 0.0  # the longest case, in wall seconds

    @contextlib.contextmanager
    def case(self, limit: float = CASE_CPU_SECONDS) -> Iterator[None]:
        """One generated case: counted, timed, and any failure classified."""
        self.cases += 1
        began = time.perf_counter()
        began_cpu = cpu_seconds()
        if self.first is None:
            self.first = began
        try:
            yield
        except FalseAllow:
            self.false_allows += 1
            raise
        except BaseException:
            self.crashes += 1
            raise
        self.last = time.perf_counter()
        cpu, wall = cpu_seconds() - began_cpu, self.last - began
        self.slowest = max(self.slowest, cpu)
        self.slowest_wall = max(self.slowest_wall, wall)
        if cpu > limit or wall > CASE_WALL_SECONDS:
            self.crashes += 1
            raise SlowCase(
                f"{self.target}: one case took {cpu:.2f} s of CPU time and {wall:.2f} s of wall "
                f"time (limits {limit} s and {CASE_WALL_SECONDS} s)"
            )

    def saw(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def line(self) -> str:
        seconds = self.last - self.first if self.first is not None else 0.0
        common = ", ".join(f"{k} {v:,}" for k, v in self.outcomes.most_common(14))
        mode = "long" if LONG else "short"
        return (
            f"FUZZ {self.target}: {self.cases:,} cases, {self.crashes} crashes, "
            f"{self.false_allows} false allows ({seconds:.1f} s, costliest case "
            f"{self.slowest * 1000:.0f} ms of CPU, longest {self.slowest_wall * 1000:.0f} ms of "
            f"wall time, {mode} mode)" + (f"\n    outcomes: {common}" if common else "")
        )


@contextlib.contextmanager
def tallied(target: str) -> Iterator[Tally]:
    tally = Tally(target)
    try:
        yield tally
    finally:
        print("\n" + tally.line(), file=sys.stdout, flush=True)


# ---- mutators -----------------------------------------------------------------------------
# Mutators take a `random.Random` that hypothesis seeds (`st.randoms(use_true_random=True)`):
# one draw per case instead of dozens keeps generation far cheaper than the code under test,
# and a failing case is still reproduced from the seed hypothesis prints.
rngs = st.randoms(use_true_random=True)

# Characters that change how text is read: separators, quotes, escapes, controls, surrogates
# (what undecodable argv bytes become), bidi overrides, non-ASCII lookalikes, NUL.
AWKWARD_CHARS = (
    *".=+/-_ \t\n\r\x00\x1b\\\"'`$;|&<>{}[]()#!*?%,:@~^",
    "\udcff",
    "\ud800",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\u00a0",
    "\u0130",
    "é",
    "ß",
    "\U0001f600",
    "Ａ",
)


def any_char(rng: random.Random, alphabet: str | tuple[str, ...] = AWKWARD_CHARS) -> str:
    """A character from `alphabet` most of the time, else any code point (surrogates too)."""
    if rng.random() < 0.7:
        return rng.choice(alphabet)
    return chr(rng.randrange(0x80 if rng.random() < 0.5 else 0x110000))


def random_text(rng: random.Random, max_size: int = 40) -> str:
    return "".join(any_char(rng) for _ in range(rng.randrange(max_size + 1)))


def mutate_bytes(rng: random.Random, data: bytes, max_ops: int = 4) -> bytes:
    """`data` with 1..max_ops random edits: bit flips, overwrites, insertions, deletions,
    duplicated spans, truncation, appended garbage, swapped bytes."""
    out = bytearray(data)
    for _ in range(rng.randint(1, max_ops)):
        op = rng.choice(
            ("flip", "flip", "set", "insert", "delete", "duplicate", "truncate", "append", "swap")
        )
        size = len(out)
        at = rng.randrange(size) if size else 0
        if op == "flip" and size:
            out[at] ^= 1 << rng.randrange(8)
        elif op == "set" and size:
            out[at] = rng.randrange(256)
        elif op == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == "delete" and size:
            del out[at : at + rng.randint(1, 64)]
        elif op == "duplicate" and size:
            out[at:at] = out[at : at + rng.randint(1, 256)]
        elif op == "truncate":
            del out[at:]
        elif op == "append":
            out += rng.randbytes(rng.randint(1, 64))
        elif op == "swap" and size > 1:
            other = rng.randrange(size)
            out[at], out[other] = out[other], out[at]
    return bytes(out)


def mutate_text(
    rng: random.Random, text: str, alphabet: str | tuple[str, ...] = AWKWARD_CHARS, max_ops: int = 4
) -> str:
    """`text` with 1..max_ops random edits, new characters mostly from `alphabet`."""
    out = list(text)
    for _ in range(rng.randint(1, max_ops)):
        op = rng.choice(("set", "set", "insert", "delete", "duplicate", "truncate", "swap"))
        size = len(out)
        at = rng.randrange(size) if size else 0
        if op == "set" and size:
            out[at] = any_char(rng, alphabet)
        elif op == "insert":
            out[at:at] = [any_char(rng, alphabet) for _ in range(rng.randint(1, 8))]
        elif op == "delete" and size:
            del out[at : at + rng.randint(1, 16)]
        elif op == "duplicate" and size:
            out[at:at] = out[at : at + rng.randint(1, 64)]
        elif op == "truncate":
            del out[at:]
        elif op == "swap" and size > 1:
            other = rng.randrange(size)
            out[at], out[other] = out[other], out[at]
    return "".join(out)


def random_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-3, 3)
    if kind == 3:
        return rng.choice([2**31, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400])
    if kind == 4:
        return rng.choice([0.5, -0.0, 1e308, 1e-308, 3.0])
    if kind == 5:
        return ""
    return random_text(rng, 24)


def random_json(rng: random.Random, depth: int = 3) -> Any:
    """A JSON-able value: scalars, lists and objects nested up to `depth`."""
    kind = rng.randrange(6) if depth > 0 else 0
    if kind == 4:
        return [random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    if kind == 5:
        return {random_text(rng, 8): random_json(rng, depth - 1) for _ in range(rng.randrange(4))}
    return random_scalar(rng)


# ---- an isolated home and a realistic workspace -------------------------------------------
@contextlib.contextmanager
def isolated_home(root: Path) -> Iterator[Path]:
    """CARACAL_HOME at `root`, no keyring, nothing inherited, and no reachable Docker engine
    (so no fuzzed command can touch a real stack)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARACAL_HOME", str(root))
        mp.setenv("CARACAL_KEYRING", "off")
        mp.setenv("DOCKER_HOST", "unix:///nonexistent/caracal-fuzz/docker.sock")
        for var in (
            "CARACAL_WORKSPACE",
            "CARACAL_STORE_URL",
            "CARACAL_MASTER_KEY",
            "CARACAL_MASTER_KEY_FILE",
            "CARACAL_REDIS_URL",
            "CARACAL_MAX_BODY_BYTES",
            "CARACAL_BACKUP_MAX_BYTES",
        ):
            mp.delenv(var, raising=False)
        yield root


@contextlib.contextmanager
def fast_cli() -> Iterator[None]:
    """Build the click command tree once instead of once per `run(argv)` (about 90 ms each):
    the tree is the same object typer would build, and click keeps no state in it between
    invocations, so only the time changes."""
    import typer.main

    real: Callable[..., Any] = typer.main.get_command
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(typer.main, "get_command", functools.lru_cache(maxsize=8)(real))
        yield


READ = "provider:github:action:read"
WRITE = "provider:github:action:write"
COMMENT = "provider:github:action:comment"
REPOS = "provider:github:resource:repos"
ISSUES = "provider:github:resource:issues"
DOCS_READ = "provider:docs:action:read"
DOCS_WRITE = "provider:docs:action:write"
FILES = "provider:docs:resource:files"
# The catalog's declared (resource, action) pairs: a mandate grants only those.
DECLARED = {(REPOS, READ), (REPOS, WRITE), (ISSUES, COMMENT)}
BOUND_INTENT: dict[str, Any] = {"tool": "read_doc", "arguments": {"path": "a.txt"}}
# Nothing listens there: a probe or a forwarded call is refused at once.
CLOSED_URL = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Grant:
    """What one issued mandate allows: its token, scopes, subject and intent binding."""

    label: str
    mandate_id: str
    token: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    subject: str
    subject_id: str
    intent: Any = None
    live: bool = True  # False for the revoked one

    def allows(self, action: str, resource: str) -> bool:
        return (
            self.live
            and action in self.actions
            and resource in self.resources
            and ((resource, action) in DECLARED or resource == FILES)
        )


@dataclass
class World:
    name: str
    principals: dict[str, str]  # name -> id
    grants: dict[str, Grant]

    @property
    def tokens(self) -> list[str]:
        return [g.token for g in self.grants.values()]

    def grant_of(self, token: str) -> Grant | None:
        return next((g for g in self.grants.values() if g.token == token), None)


def _ok(result: Any) -> Any:
    assert result.code == 0, result
    return result


def build_world(name: str = "fuzz", *, encrypted_config: bool = False) -> World:
    """Workspace `name` (made active) with two providers (one an MCP server with two tools),
    five principals, policies and five mandates: a root, a delegated child, two for the MCP
    agent (one bound to an intent) and a revoked one."""
    from tests.support.cli import run_cli

    def cli(line: str, *extra: str, stdin: str = "") -> Any:
        """One command; `line` is split on spaces (none of its words holds one)."""
        return _ok(run_cli("-w", name, *line.split(), *extra, input=stdin))

    _ok(run_cli("workspace", "create", name))
    _ok(run_cli("workspace", "use", name))
    if encrypted_config:  # an ENC[...] value in config.yaml, decrypted with the master key
        cli("config set runtime.redis_url --stdin", stdin="redis://:pw@127.0.0.1:9/0\n")
    cli(
        f"provider add github --base-url {CLOSED_URL} --resource repos=Repositories "
        "--resource issues --action repos:read:GET:/repos --action repos:write "
        "--action issues:comment"
    )
    cli(
        f"provider add docs --service-type mcp --base-url {CLOSED_URL}/mcp --resource files "
        "--action files:read --action files:write"
    )
    cli(f"tool register read_doc --server docs --resource {FILES} --action {DOCS_READ}")
    cli(f"tool register write_doc --server docs --resource {FILES} --action {DOCS_WRITE}")
    principals = {}
    kinds = {"alice": "human", "orch": "orchestrator", "w1": "worker", "agent": "worker"}
    for who, kind in {**kinds, "svc": "service"}.items():
        principals[who] = cli(f"principal register --kind {kind} --name {who}").stdout.strip()
    for who, provider in [
        ("orch", "github"),
        ("w1", "github"),
        ("agent", "docs"),
        ("svc", "github"),
    ]:
        cli(
            f"policy create --principal {who} --max-validity 1h --delegation-depth 2 "
            f"--resource provider:{provider}:resource:* --action provider:{provider}:action:*"
        )

    grants: dict[str, Grant] = {}

    def grant(label: str, subject: str, actions: tuple[str, ...], resources: tuple[str, ...],
              command: str, *extra: str, intent: Any = None) -> Grant:  # fmt: skip
        scopes = [f"--action {a}" for a in actions] + [f"--resource {r}" for r in resources]
        data = cli(f"{command} --subject {subject} --json {' '.join(scopes)}", *extra).json()
        grants[label] = Grant(label, data["id"], data["token"], actions, resources, subject,
                              principals[subject], intent)  # fmt: skip
        return grants[label]

    issue = "mandate issue --issuer alice --ttl 1h"
    root = grant("root", "orch", (READ, WRITE), (REPOS,), f"{issue} --delegation-depth 1")
    grant("child", "w1", (READ,), (REPOS,), f"mandate delegate {root.mandate_id} --ttl 30m")
    grant("agent", "agent", (DOCS_READ, DOCS_WRITE), (FILES,), issue)
    bound = json.dumps(BOUND_INTENT)
    grant("bound", "agent", (DOCS_READ,), (FILES,), issue, "--intent", bound, intent=BOUND_INTENT)
    revoked = grant("revoked", "svc", (READ, COMMENT), (ISSUES, REPOS), issue)
    cli(f"mandate revoke {revoked.mandate_id} --yes")
    grants["revoked"] = dataclasses.replace(revoked, live=False)
    return World(name, principals, grants)


def leftovers(home: Path, name: str) -> list[str]:
    """What a failed restore of workspace `name` left behind (must be nothing)."""
    workspaces = home / "workspaces"
    found = []
    if (workspaces / name).exists():
        found.append(name)
    if workspaces.exists():
        found += sorted(p.name for p in workspaces.iterdir() if p.name.startswith("."))
    return found
