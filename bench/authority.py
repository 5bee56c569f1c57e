"""Authority benchmarks: validation (cached, cold, chains, facade), issuance, the ledger.

Every benchmark builds its own workspace in a temporary CARACAL_HOME on the embedded SQLite
store and removes it afterwards. Run them with `python -m bench` (see bench/README.md).
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from bench.common import (
    ACTION,
    RESOURCE,
    Result,
    Sizes,
    expect_allowed,
    median,
    percentile,
    populate,
    sample,
    workspace,
)
from caracal.core.keys import load_public
from caracal.core.ledger import NewEvent
from caracal.core.validation import AuthorityState, KeyInfo, MandateState
from caracal.services.ledger_verify import verify_ledger
from caracal.store.schema import mandates, principal_keys, principals

if TYPE_CHECKING:
    from caracal.services.facade import Caracal
    from caracal.services.ledger_verify import VerifyReport


# ---- an in-memory AuthorityState -----------------------------------------------------------
class MemoryAuthorityState:
    """AuthorityState from plain dicts: what a runtime cache kept fresh by revocation events
    would hold. Loaded from the store once; answers without touching it."""

    def __init__(
        self,
        workspace_id: str,
        keys: dict[str, KeyInfo],
        mandates: dict[str, MandateState],
        statuses: dict[str, str],
    ) -> None:
        self._workspace_id = workspace_id
        self._keys = keys
        self._mandates = mandates
        self._statuses = statuses

    @property
    def workspace_id(self) -> str:
        return self._workspace_id

    def key(self, kid: str) -> KeyInfo | None:
        return self._keys.get(kid)

    def mandate(self, mandate_id: str) -> MandateState | None:
        return self._mandates.get(mandate_id)

    def principal_status(self, principal_id: str) -> str | None:
        return self._statuses.get(principal_id)

    @classmethod
    def load(cls, app: Caracal) -> MemoryAuthorityState:
        with app.store.read() as conn:
            keys = {
                r.kid: KeyInfo(r.kid, r.principal_id, load_public(r.public_pem), r.status)
                for r in conn.execute(
                    select(
                        principal_keys.c.kid,
                        principal_keys.c.principal_id,
                        principal_keys.c.public_pem,
                        principal_keys.c.status,
                    )
                )
            }
            rows = {
                r.id: MandateState(r.id, r.token, r.revoked_at is not None)
                for r in conn.execute(
                    select(mandates.c.id, mandates.c.token, mandates.c.revoked_at)
                )
            }
            statuses = {
                r.id: r.status for r in conn.execute(select(principals.c.id, principals.c.status))
            }
        return cls(app.workspace_id, keys, rows, statuses)


def _store_state(app: Caracal, conn: Connection) -> Callable[[], AuthorityState]:
    """A factory of StoreAuthorityState over one open read connection, one per decision
    (as the validation service does)."""
    from caracal.services.authority_state import StoreAuthorityState

    ws, keys = app.workspace_id, app.signing
    return lambda: StoreAuthorityState(conn, ws, keys)


def _duration(
    bench: str,
    metric: str,
    samples: list[int],
    target_ns: float | None = None,
    notes: list[str] | None = None,
) -> Result:
    return Result(
        bench,
        metric,
        median(samples),
        "ns",
        p90=percentile(samples, 90) if len(samples) >= 10 else None,
        target=target_ns,
        notes=notes or [],
    )


# ---- 1. cached validation ------------------------------------------------------------------
def bench_validate_warm(sizes: Sizes) -> list[Result]:
    """Validator.validate with the chain already in its token-hash cache: only the dynamic
    checks run (key status, revocation, time, principal status, scope)."""
    name = "validate-warm"
    with workspace() as app:
        scenario = populate(app)
        state = MemoryAuthorityState.load(app)
        validator = app.validator
        now = time.time()
        results = []
        for token, label, target in (
            (scenario.root.token, "root mandate, in-memory state", 10_000.0),
            (scenario.leaf.token, "depth-3 chain leaf, in-memory state", None),
        ):
            expect_allowed(validator.validate(token, ACTION, RESOURCE, state, now), label)

            def call(token: str = token) -> None:
                validator.validate(token, ACTION, RESOURCE, state, now)

            samples = sample(call, sizes.warm, warmup=1_000, label=f"{name}: {label}")
            results.append(_duration(name, label, samples, target))

        # The same through the store, one StoreAuthorityState per decision.
        with app.store.read() as conn:
            fresh_state = _store_state(app, conn)
            for token, label in (
                (scenario.root.token, "root mandate, store-backed state"),
                (scenario.leaf.token, "depth-3 chain leaf, store-backed state"),
            ):
                expect_allowed(
                    validator.validate(token, ACTION, RESOURCE, fresh_state(), now), label
                )

                def call_store(token: str = token) -> None:
                    validator.validate(token, ACTION, RESOURCE, fresh_state(), now)

                samples = sample(call_store, sizes.warm // 4, warmup=200, label=f"{name}: {label}")
                results.append(_duration(name, label, samples))
    return results


# ---- 2. first validation -------------------------------------------------------------------
def bench_validate_cold(sizes: Sizes) -> list[Result]:
    """The first validation of a token: decode, strict JSON, claims, ES256 verify, stored-
    token comparison, then the dynamic checks. The cache is emptied before every sample."""
    from caracal.core import jws
    from caracal.core.keys import verify

    name = "validate-cold"
    with workspace() as app:
        scenario = populate(app)
        state = MemoryAuthorityState.load(app)
        validator = app.validator
        now = time.time()
        token = scenario.root.token
        expect_allowed(validator.validate(token, ACTION, RESOURCE, state, now), name)

        def call() -> None:
            validator.validate(token, ACTION, RESOURCE, state, now)

        cold = sample(
            call, sizes.cold, warmup=50, before=validator.forget, label=f"{name}: in-memory"
        )

        parsed = jws.decode(token)
        key = state.key(parsed.kid)
        assert key is not None
        public, signing_input, signature = key.public, parsed.signing_input, parsed.signature
        assert verify(public, signing_input, signature)

        def verify_only() -> None:
            verify(public, signing_input, signature)

        sig = sample(verify_only, sizes.cold, warmup=50, label=f"{name}: verify only")

        with app.store.read() as conn:
            fresh_state = _store_state(app, conn)

            def call_store() -> None:
                validator.validate(token, ACTION, RESOURCE, fresh_state(), now)

            validator.forget()
            expect_allowed(validator.validate(token, ACTION, RESOURCE, fresh_state(), now), name)
            store = sample(
                call_store,
                sizes.cold,
                warmup=50,
                before=validator.forget,
                label=f"{name}: store-backed",
            )
    return [
        _duration(name, "root mandate, in-memory state", cold, 120_000.0),
        _duration(name, "ES256 verify alone (reference)", sig),
        _duration(name, "root mandate, store-backed state", store),
    ]


# ---- 3. first validation of a depth-3 chain ------------------------------------------------
def bench_validate_chain(sizes: Sizes) -> list[Result]:
    """A leaf three delegations below its root (alice → orch → orch2 → w1 → w2), cold: four
    tokens decoded and verified, three links checked, four sets of dynamic checks."""
    name = "validate-chain"
    with workspace() as app:
        scenario = populate(app)
        state = MemoryAuthorityState.load(app)
        validator = app.validator
        now = time.time()
        token = scenario.leaf.token
        expect_allowed(validator.validate(token, ACTION, RESOURCE, state, now), name)

        def call() -> None:
            validator.validate(token, ACTION, RESOURCE, state, now)

        cold = sample(
            call, sizes.chain, warmup=20, before=validator.forget, label=f"{name}: in-memory"
        )
        with app.store.read() as conn:
            fresh_state = _store_state(app, conn)

            def call_store() -> None:
                validator.validate(token, ACTION, RESOURCE, fresh_state(), now)

            validator.forget()
            expect_allowed(validator.validate(token, ACTION, RESOURCE, fresh_state(), now), name)
            store = sample(
                call_store,
                sizes.chain,
                warmup=20,
                before=validator.forget,
                label=f"{name}: store-backed",
            )
    return [
        _duration(name, "depth-3 chain, cold, in-memory state", cold, 250_000.0),
        _duration(name, "depth-3 chain, cold, store-backed state", store),
    ]


# ---- 4. issuance ---------------------------------------------------------------------------
def bench_issue(sizes: Sizes) -> list[Result]:
    """`app.mandates.issue(...)`: one write transaction that reads the ledger head and the
    versions (both parties, the policy and the key are kept behind the authority version),
    signs the token (ES256), stores the mandate, appends a ledger event and signs the new tree
    head (ES256)."""
    name = "issue"
    with workspace() as app:
        populate(app)

        def issue() -> None:
            app.mandates.issue("alice", "orch", [RESOURCE], [ACTION], "30m", delegation_depth=3)

        sample(issue, 100, profile=False)  # warm-up
        started = time.perf_counter_ns()
        samples = sample(issue, sizes.issue, gc_off=False, label=f"{name}: measured")
        wall = time.perf_counter_ns() - started
    per_call = median(samples)
    return [
        _duration(name, "per call", samples),
        Result(
            name,
            "mandates/s from the median call",
            1e9 / per_call,
            "/s",
            target=1_500.0,
            higher_is_better=True,
        ),
        Result(
            name,
            f"mandates/s over {sizes.issue:,} issues (wall time)",
            sizes.issue * 1e9 / wall,
            "/s",
            target=1_500.0,
            higher_is_better=True,
        ),
    ]


# ---- ledger helpers ------------------------------------------------------------------------
_DENIALS = (
    ("MANDATE_EXPIRED", "mandate {m} has expired"),
    ("ACTION_OUT_OF_SCOPE", "action provider:github:action:write is not granted"),
    ("MANDATE_REVOKED", "mandate {m} was revoked"),
    ("CALLER_MISMATCH", "caller {p} is not the subject {p}"),
)


def validation_events(count: int, seed: int = 7) -> list[NewEvent]:
    """Events shaped like the ones ValidationService records: 90 % allowed, 10 % denied,
    spread over 200 mandates and 50 principals."""
    rng = random.Random(seed)
    principal_ids = [f"pr_{secrets.token_hex(8)}" for _ in range(50)]
    mandate_ids = [(f"mnd_{secrets.token_hex(10)}", rng.choice(principal_ids)) for _ in range(200)]
    out = []
    for _ in range(count):
        mandate_id, principal_id = rng.choice(mandate_ids)
        allowed = rng.random() < 0.9
        if allowed:
            code, reason = "ALLOWED", "allowed"
        else:
            code, template = rng.choice(_DENIALS)
            reason = template.format(m=mandate_id, p=principal_id)
        out.append(
            NewEvent(
                "validation.allowed" if allowed else "validation.denied",
                {
                    "action": ACTION if allowed else "provider:github:action:write",
                    "resource": RESOURCE,
                    "caller": None,
                    "reason": reason,
                    "token_sha256": f"{rng.getrandbits(64):016x}",
                },
                principal_id=principal_id,
                mandate_id=mandate_id,
                reason_code=code,
            )
        )
    return out


def _append(app: Caracal, events: list[NewEvent]) -> int:
    return app.store.write(lambda conn: app.ledger.record(conn, *events))


# ---- 5. ledger verify ----------------------------------------------------------------------
def bench_ledger_verify(sizes: Sizes) -> list[Result]:
    """`app.ledger.verify()` (what `caracal ledger verify` runs) over a ledger filled with
    validation events in large transactions: every event hash recomputed and linked, the
    Merkle tree rebuilt and compared with the signed head, the state replayed against the
    tables. Then what an operator and an auditor do on the same ledger: an incremental verify
    of the last 1,000 events, inclusion proofs and consistency proofs."""
    name = "ledger-verify"
    total, batch = sizes.ledger_events, sizes.ledger_fill_batch
    with workspace() as app:
        events = validation_events(batch)
        parts = [events[: min(batch, total - done)] for done in range(0, total, batch)]
        feed = iter(parts)

        def fill() -> None:
            _append(app, next(feed))

        started = time.perf_counter_ns()
        sample(fill, len(parts), gc_off=False, profile=False)
        fill_wall = time.perf_counter_ns() - started
        filled = sum(len(p) for p in parts)
        head_seq, _ = app.ledger.head()
        reports: list[VerifyReport] = []

        def verify() -> None:
            reports.append(app.ledger.verify())

        runs = sample(verify, sizes.verify_runs, gc_off=False, label=f"{name}: verify")
        heads = app.ledger_heads

        def verify_chain() -> None:
            reports.append(
                verify_ledger(app.store, heads.pinned, app.workspace_id, heads.publisher.recorded())
            )

        chain = sample(verify_chain, sizes.verify_runs, gc_off=False, label=f"{name}: chain")
        for i, report in enumerate(reports):
            if not report.ok or report.events != head_seq:
                raise RuntimeError(f"ledger verify failed on run {i}: {report.problem}")
        checkpoints = reports[-1].checkpoints
        incremental, inclusion, consistency = _ledger_followups(app, head_seq)
    size = f"{head_seq:,} events"
    return [
        _duration(
            name,
            f"verify {size} with the state replay ({checkpoints:,} kept heads), median of {len(runs)}",
            runs,
            3e9 if total >= 1_000_000 else 3e9 * total / 1_000_000,
            notes=[] if total >= 1_000_000 else [f"target scaled to {total:,} events"],
        ),
        _duration(
            name,
            f"chain only: {size}, every hash and link, the tree against the signed head "
            f"(no state replay), median of {len(chain)}",
            chain,
            1.5e9 * min(1.0, total / 1_000_000),
            notes=[] if total >= 1_000_000 else [f"target scaled to {total:,} events"],
        ),
        _duration(name, "incremental verify of the last 1,000 events", incremental, 50e6),
        _duration(name, f"inclusion proof, any of {size}", inclusion, 10e6),
        _duration(name, f"consistency proof from a kept head to {size}", consistency, 50e6),
        Result(
            name,
            f"fill rate, {batch:,} events per transaction (wall time)",
            filled * 1e9 / fill_wall,
            "/s",
        ),
    ]


def _ledger_followups(app: Caracal, head_seq: int) -> tuple[list[int], list[int], list[int]]:
    """(incremental verify, inclusion proof, consistency proof) samples, in ns."""
    import json as _json

    from caracal.store import ledger_rows

    rng = random.Random(11)
    incremental: list[int] = []
    for _ in range(5):
        _append(app, validation_events(1000, seed=rng.randrange(1 << 30)))
        began = time.perf_counter_ns()
        report = app.ledger.verify(incremental=True)
        incremental.append(time.perf_counter_ns() - began)
        if not report.ok or report.events < 1000:
            raise RuntimeError(f"incremental verify failed: {report.problem}")
    size = app.ledger.head()[0]
    inclusion: list[int] = []
    for _ in range(50):
        began = time.perf_counter_ns()
        app.ledger.prove(rng.randrange(1, size + 1))
        inclusion.append(time.perf_counter_ns() - began)
    with app.store.read() as conn:
        kept = ledger_rows.checkpoints(conn, app.workspace_id)
    saved = [_json.dumps(h.to_dict()).encode() for h in kept] or [
        _json.dumps(app.ledger.signed_head().to_dict()).encode()
    ]
    consistency: list[int] = []
    for head in (saved * (20 // len(saved) + 1))[:20]:
        began = time.perf_counter_ns()
        app.ledger.consistency_since(head)
        consistency.append(time.perf_counter_ns() - began)
    return incremental, inclusion, consistency


# ---- 6. ledger appends ---------------------------------------------------------------------
def bench_ledger_append(sizes: Sizes) -> list[Result]:
    """Appends through `app.store.write(... app.ledger.record(...))`: one event per committed
    transaction, then `append_batch` events per transaction."""
    name = "ledger-append"
    with workspace() as app:
        events = validation_events(max(sizes.append_single, sizes.append_batch) + 200)
        stream = iter(events)
        _append(app, events[:100])  # warms the ledger signing key and the statement cache

        def one() -> None:
            _append(app, [next(stream)])

        started = time.perf_counter_ns()
        single = sample(one, sizes.append_single, gc_off=False, label=f"{name}: single")
        single_wall = time.perf_counter_ns() - started

        batch_events = events[: sizes.append_batch]

        def many() -> None:
            _append(app, batch_events)

        sample(many, 2, profile=False)  # warm-up
        batched = sample(many, sizes.append_batches, gc_off=False, label=f"{name}: batched")
    per_single = median(single)
    per_batch = median(batched)
    return [
        _duration(name, "one event per transaction, per commit", single),
        Result(
            name,
            "one event per transaction, events/s (median)",
            1e9 / per_single,
            "/s",
            target=5_000.0,
            higher_is_better=True,
        ),
        Result(
            name,
            "one event per transaction, events/s (wall time)",
            sizes.append_single * 1e9 / single_wall,
            "/s",
        ),
        _duration(name, f"{sizes.append_batch:,} events per transaction, per commit", batched),
        Result(
            name,
            f"{sizes.append_batch:,} events per transaction, events/s (median)",
            sizes.append_batch * 1e9 / per_batch,
            "/s",
            target=50_000.0,
            higher_is_better=True,
        ),
    ]


# ---- 7. full facade validation -------------------------------------------------------------
def bench_validate_facade(sizes: Sizes) -> list[Result]:
    """`app.validation.validate(...)`: a write transaction that validates through the store
    (validator cache warm after the first call) and records the decision in the ledger."""
    name = "validate-facade"
    with workspace() as app:
        scenario = populate(app)
        results = []
        for token, label in (
            (scenario.root.token, "root mandate"),
            (scenario.leaf.token, "depth-3 chain leaf"),
        ):
            expect_allowed(app.validation.validate(ACTION, RESOURCE, token=token), label)

            def call(token: str = token) -> None:
                app.validation.validate(ACTION, RESOURCE, token=token)

            samples = sample(call, sizes.facade, warmup=100, gc_off=False, label=f"{name}: {label}")
            results.append(_duration(name, f"{label}, with ledger write", samples))
            results.append(
                Result(name, f"{label}, validations/s (median)", 1e9 / median(samples), "/s")
            )
    return results


BENCHMARKS: dict[str, Callable[[Sizes], list[Result]]] = {
    "validate-warm": bench_validate_warm,
    "validate-cold": bench_validate_cold,
    "validate-chain": bench_validate_chain,
    "issue": bench_issue,
    "ledger-verify": bench_ledger_verify,
    "ledger-append": bench_ledger_append,
    "validate-facade": bench_validate_facade,
}
