"""Shared helpers: timing, statistics, results, throw-away workspaces and a standard scenario."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caracal.services.facade import Caracal
    from caracal.services.mandate_issuance import IssuedMandate

RESOURCE = "provider:github:resource:repos"
ACTION = "provider:github:action:read"

# The variables a benchmark sets or clears; restored afterwards.
_ENV_SET = ("CARACAL_HOME", "CARACAL_KEYRING")
_ENV_CLEARED = (
    "CARACAL_WORKSPACE",
    "CARACAL_STORE_URL",
    "CARACAL_MASTER_KEY",
    "CARACAL_MASTER_KEY_FILE",
)


# ---- sizes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How many samples each benchmark takes. `QUICK` is for smoke tests only."""

    warm: int = 20_000  # cached validations
    cold: int = 2_000  # first validations (signature verified each time)
    chain: int = 1_000  # first validations of a depth-3 chain
    issue: int = 2_000  # mandates issued
    ledger_events: int = 1_000_000  # events in the ledger that is verified
    ledger_fill_batch: int = 10_000  # events per transaction while filling it
    verify_runs: int = 3  # full verifications (median reported)
    append_single: int = 5_000  # one event per committed transaction
    append_batches: int = 50  # transactions of `append_batch` events
    append_batch: int = 1_000
    facade: int = 2_000  # facade validations (each writes a ledger event)
    backup_mandates: int = 100_000  # mandates in the workspace that is backed up
    backup_events: int = 1_000_000  # ledger events in it (validation events fill it up)
    backup_runs: int = 3  # creates and restores of each kind (median reported)
    cli_runs: int = 15  # runs of each command whose start-to-exit time is measured
    bulk_issue: int = 10_000  # mandates issued by one `mandate issue --from FILE`


FULL = Sizes()
QUICK = Sizes(
    warm=2_000,
    cold=300,
    chain=150,
    issue=200,
    ledger_events=50_000,
    ledger_fill_batch=10_000,
    verify_runs=3,
    append_single=500,
    append_batches=10,
    append_batch=1_000,
    facade=300,
    backup_mandates=2_000,
    backup_events=50_000,
    backup_runs=1,
    cli_runs=3,
    bulk_issue=500,
)


# ---- results -------------------------------------------------------------------------------
@dataclass
class Result:
    """One figure. `unit` is "ns" (a duration, lower is better unless said otherwise) or "/s"
    (a rate); `value` is the median unless the metric says otherwise."""

    bench: str
    metric: str
    value: float
    unit: str
    p90: float | None = None
    target: float | None = None
    higher_is_better: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.target is None:
            return "-"
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "pass" if ok else "MISS"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "(extra)"
        return ("≥ " if self.higher_is_better else "≤ ") + fmt(self.target, self.unit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "p90": self.p90,
            "target": self.target,
            "higher_is_better": self.higher_is_better,
            "status": self.status,
            "notes": self.notes,
        }


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "ns":
        if value < 1_000:
            return f"{value:.0f} ns"
        if value < 1_000_000:
            return f"{value / 1_000:.1f} µs"
        if value < 1_000_000_000:
            return f"{value / 1_000_000:.2f} ms"
        return f"{value / 1_000_000_000:.3f} s"
    return f"{value:g} {unit}"


def compare_text(result: Result, baseline: dict[tuple[str, str], dict[str, Any]]) -> str:
    """This figure against the same figure of a baseline run (`--compare FILE`), as a ratio
    oriented so that above 1.00x is better: new/old for rates, old/new for durations."""
    old = baseline.get((result.bench, result.metric))
    if old is None or not old.get("value") or not result.value:
        return "(new)"
    ratio = result.value / old["value"]
    better = ratio if result.unit == "/s" or result.higher_is_better else 1 / ratio
    return f"{better:.2f}x {'better' if better >= 1 else 'worse'}"


def print_table(
    results: list[Result],
    out: Callable[[str], None] = print,
    baseline: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> None:
    header: tuple[str, ...] = ("benchmark", "metric", "median", "p90", "target", "result")
    rows: list[tuple[str, ...]] = [
        (r.bench, r.metric, fmt(r.value, r.unit), fmt(r.p90, r.unit), r.target_text, r.status)
        for r in results
    ]
    if baseline is not None:
        header = (*header, "vs baseline")
        rows = [(*row, compare_text(r, baseline)) for row, r in zip(rows, results, strict=True)]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in (2, 3) else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out(line(header))
    out(line(tuple("-" * w for w in widths)))
    for row in rows:
        out(line(row))


# ---- timing --------------------------------------------------------------------------------
class _Profiling:
    """Optional profiler wrapped around measured loops only (`--profile`)."""

    kind: str | None = None
    reports: list[tuple[str, str]] = []  # noqa: RUF012 - one process-wide collector

    @classmethod
    @contextlib.contextmanager
    def around(cls, label: str, *, enabled: bool = True) -> Iterator[None]:
        if cls.kind is None or not enabled:
            yield
            return
        if cls.kind == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
            try:
                yield
            finally:
                profiler.stop()
                cls.reports.append((label, profiler.output_text(unicode=True, color=False)))
            return
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            buf = io.StringIO()
            stats = pstats.Stats(prof, stream=buf).strip_dirs()
            stats.sort_stats("cumulative").print_stats(30)
            stats.sort_stats("tottime").print_stats(20)
            cls.reports.append((label, buf.getvalue()))


def enable_profiling(kind: str) -> None:
    _Profiling.kind = kind


def profile_reports() -> list[tuple[str, str]]:
    return list(_Profiling.reports)


def sample(
    fn: Callable[[], object],
    n: int,
    *,
    warmup: int = 0,
    before: Callable[[], object] | None = None,
    gc_off: bool = True,
    label: str = "",
    profile: bool = True,
) -> list[int]:
    """Time `n` calls of `fn` one by one (ns). `before` runs untimed ahead of every call,
    warm-up included. With `gc_off` the collector is paused while measuring (as `timeit`
    does), so a collection does not land in one unlucky sample. Under `--profile` the
    measured loop (never the warm-up) is profiled unless `profile` is false."""
    for _ in range(warmup):
        if before is not None:
            before()
        fn()
    gc.collect()
    was_enabled = gc.isenabled()
    if gc_off:
        gc.disable()
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    try:
        with _Profiling.around(label or getattr(fn, "__name__", "?"), enabled=profile):
            if before is None:
                for _ in range(n):
                    t0 = clock()
                    fn()
                    append(clock() - t0)
            else:
                for _ in range(n):
                    before()
                    t0 = clock()
                    fn()
                    append(clock() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return samples


def median(samples: list[int] | list[float]) -> float:
    ordered = sorted(samples)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(samples: list[int] | list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def timer_overhead_ns() -> float:
    """Median cost of one empty timed call: the floor under every per-call figure."""
    return median(sample(_nothing, 20_000, warmup=1_000, profile=False))


def _nothing() -> None:
    return None


# ---- launching as installed -----------------------------------------------------------------
def installed_bytecode() -> None:
    """Compile caracal's modules to bytecode, as `pip install` does for an installation. A
    launch timed on a checkout without it (PYTHONDONTWRITEBYTECODE set, or a read-only tree)
    compiles every module it imports, every time: a cost no installed copy pays."""
    import compileall

    import caracal

    compileall.compile_dir(Path(caracal.__file__).parent, quiet=1)


# ---- throw-away workspaces -----------------------------------------------------------------
@contextlib.contextmanager
def temporary_home() -> Iterator[Path]:
    """A fresh CARACAL_HOME (keyring off, no inherited workspace or store settings), removed
    afterwards together with every file the benchmark wrote."""
    saved = {k: os.environ.get(k) for k in (*_ENV_SET, *_ENV_CLEARED)}
    root = Path(tempfile.mkdtemp(prefix="caracal-bench-"))
    os.environ["CARACAL_HOME"] = str(root / "home")
    os.environ["CARACAL_KEYRING"] = "off"
    for key in _ENV_CLEARED:
        os.environ.pop(key, None)
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def workspace(name: str = "bench") -> Iterator[Caracal]:
    """A new workspace on the embedded SQLite store, opened through the facade."""
    from caracal.services.facade import Caracal
    from caracal.services.logs import detach_workspace_log
    from caracal.services.workspaces import WorkspaceManager

    with temporary_home():
        WorkspaceManager().create(name)
        app = Caracal.open(name)
        try:
            yield app
        finally:
            app.close()
            detach_workspace_log(app.paths.log_file)


@dataclass(frozen=True)
class Scenario:
    """alice (human) issues a root mandate to orch (orchestrator, depth 3), which is delegated
    orch → orch2 → w1 → w2 (orchestrator, worker, worker): `chain` is root first, leaf last."""

    root: IssuedMandate
    chain: tuple[IssuedMandate, ...]

    @property
    def leaf(self) -> IssuedMandate:
        return self.chain[-1]


PRINCIPALS = (
    ("human", "alice"),
    ("orchestrator", "orch"),
    ("orchestrator", "orch2"),
    ("worker", "w1"),
    ("worker", "w2"),
)


def populate(app: Caracal) -> Scenario:
    """One provider, five principals with policies, and a depth-3 delegated chain."""
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
            name, "1h", ["provider:github:resource:*"], ["provider:github:action:*"], 3
        )
    root = app.mandates.issue("alice", "orch", [RESOURCE], [ACTION], "30m", delegation_depth=3)
    chain = [root]
    for subject in ("orch2", "w1", "w2"):
        chain.append(app.mandates.delegate(chain[-1].id, subject, [RESOURCE], [ACTION], "20m"))
    assert chain[-1].claims.depth == 0, "the leaf should have used up the delegation depth"
    return Scenario(root, tuple(chain))


def expect_allowed(decision: Any, what: str) -> None:
    """Benchmarks measure the success path; anything else is a broken set-up."""
    if not decision.allowed:
        raise RuntimeError(
            f"{what}: expected ALLOWED, got {decision.reason_code}: {decision.reason}"
        )
