"""The tamper-evident ledger: hash-chained events and signed checkpoints.

Each event's hash is SHA-256 over the canonical JSON of the event (every field, including
`seq` and `prev_hash`), so changing, deleting or reordering any event breaks the chain.
Checkpoints sign (workspace, first seq, last seq, head hash) with the workspace ledger key;
they make truncation detectable and let an auditor trust a prefix without the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from caracal.core.canonical import canonical_bytes, canonical_json

GENESIS_HASH = "0" * 64

# One row as stored: seq, ts_us, type, actor, principal_id, mandate_id, reason_code,
# payload (canonical JSON text), prev_hash, hash.
Row = tuple[int, int, str, str | None, str | None, str | None, str | None, str, str, str]


def _opt(value: str | None) -> str:
    return "null" if value is None else str(_quote(value))


def event_json(
    seq: int,
    ts_us: int,
    type_: str,
    actor: str | None,
    principal_id: str | None,
    mandate_id: str | None,
    reason_code: str | None,
    payload: str,
    prev_hash: str,
) -> str:
    """Canonical JSON of an event, assembled directly (equal to `canonical_json` of the
    dict; a test holds the two together) because verification runs it a million times."""
    return (
        f'{{"actor":{_opt(actor)},"mandate_id":{_opt(mandate_id)},"payload":{payload},'
        f'"prev_hash":{_quote(prev_hash)},"principal_id":{_opt(principal_id)},'
        f'"reason_code":{_opt(reason_code)},"seq":{int(seq)},"ts":{int(ts_us)},'
        f'"type":{_quote(type_)}}}'
    )


def event_hash(
    seq: int,
    ts_us: int,
    type_: str,
    actor: str | None,
    principal_id: str | None,
    mandate_id: str | None,
    reason_code: str | None,
    payload: str,
    prev_hash: str,
) -> str:
    text = event_json(
        seq, ts_us, type_, actor, principal_id, mandate_id, reason_code, payload, prev_hash
    )
    # Events we write are pure ASCII; UTF-8 (lone surrogates kept) lets an altered, non-ASCII
    # value hash to something else instead of failing to hash.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append; `payload` is any JSON-able mapping."""

    type: str
    payload: dict[str, Any]
    principal_id: str | None = None
    mandate_id: str | None = None
    reason_code: str | None = None


def seal(
    events: Sequence[NewEvent], *, first_seq: int, prev_hash: str, ts_us: int, actor: str | None
) -> list[Row]:
    """Chain `events` after (first_seq - 1, prev_hash); return rows ready to store."""
    rows: list[Row] = []
    seq, prev = first_seq, prev_hash
    for event in events:
        payload = canonical_json(event.payload)
        digest = event_hash(
            seq,
            ts_us,
            event.type,
            actor,
            event.principal_id,
            event.mandate_id,
            event.reason_code,
            payload,
            prev,
        )
        rows.append(
            (
                seq,
                ts_us,
                event.type,
                actor,
                event.principal_id,
                event.mandate_id,
                event.reason_code,
                payload,
                prev,
                digest,
            )
        )
        seq, prev = seq + 1, digest
    return rows


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_type: str | None
    problem: str

    def describe(self) -> str:
        kind = f" ({self.event_type})" if self.event_type else ""
        return f"event {self.seq}{kind}: {self.problem}"


@dataclass
class ChainWalk:
    """Walks rows in `seq` order, remembering the hashes checkpoints ask about."""

    wanted: set[int]
    expected_seq: int = 1
    prev_hash: str = GENESIS_HASH
    count: int = 0
    failure: ChainBreak | None = None

    def __post_init__(self) -> None:
        self.seen: dict[int, str] = {}

    def feed(self, rows: Iterable[Row]) -> bool:
        """Consume rows; return False at the first break (kept in `failure`)."""
        expected, prev, wanted, seen = self.expected_seq, self.prev_hash, self.wanted, self.seen
        count = 0
        for seq, ts, type_, actor, principal, mandate, reason, payload, prev_hash, digest in rows:
            if seq != expected:
                problem = (
                    f"missing: the sequence jumps from {expected - 1} to {seq}"
                    if seq > expected
                    else f"out of order: expected {expected}"
                )
                self.failure = ChainBreak(
                    expected if seq > expected else seq, None if seq > expected else type_, problem
                )
                break
            if prev_hash != prev:
                self.failure = ChainBreak(
                    seq, type_, "prev_hash does not link to the event before it"
                )
                break
            try:
                computed = event_hash(
                    seq, ts, type_, actor, principal, mandate, reason, payload, prev_hash
                )
            except (TypeError, ValueError):  # a value of the wrong type was written into the row
                computed = ""
            if computed != digest:
                self.failure = ChainBreak(
                    seq, str(type_), "hash does not match its contents (altered)"
                )
                break
            if seq in wanted:
                seen[seq] = digest
            expected, prev = seq + 1, digest
            count += 1
        self.expected_seq, self.prev_hash = expected, prev
        self.count += count
        return self.failure is None


def checkpoint_message(workspace_id: str, seq_from: int, seq_to: int, head_hash: str) -> bytes:
    return canonical_bytes(
        {
            "kind": "caracal-ledger-checkpoint",
            "ws": workspace_id,
            "from": seq_from,
            "to": seq_to,
            "head": head_hash,
        }
    )
