"""The tamper-evident ledger: hash-chained events under a Merkle tree.

Each event's hash is SHA-256(0x00 || the canonical JSON of the event) (every field, including
`seq` and `prev_hash`), so changing, deleting or reordering any event breaks the chain. That
hash is also the event's leaf hash in the ledger's Merkle tree (RFC 6962 leaf hashing, the
event's canonical JSON being the leaf data: `caracal.core.merkle`), whose signed head
(`caracal.core.tree_head`) the workspace ledger key renews in every write; the head makes
truncation and rewriting detectable and lets an auditor check proofs without the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from caracal.core.canonical import canonical_json
from caracal.core.merkle import Frontier

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
    return hashlib.sha256(b"\x00" + text.encode("utf-8", "surrogatepass")).hexdigest()


def legacy_event_hash(*fields: Any) -> str:
    """An event's hash before store schema 4 (no leaf prefix): only the upgrade reads it."""
    return hashlib.sha256(event_json(*fields).encode("utf-8", "surrogatepass")).hexdigest()


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


# Decisions are most of a ledger and change no state: a walk keeps every other event.
DECISION_PREFIX = "validation."


# The event text around the values that change with every event, for one combination of the
# other five: (text up to the payload, from prev_hash up to seq, from ts to the end, whether
# the event changes authority state). The leaf prefix 0x00 leads the text.
_Parts = tuple[str, str, str, bool]


def _parts(key: tuple[Any, ...]) -> _Parts:
    """Raises TypeError for a value that is neither text nor null (a row altered in the store),
    so only what `event_json` would quote the same way is ever memoised."""
    type_, actor, principal, mandate, reason = key
    if not isinstance(type_, str):
        raise TypeError("type is not text")
    return (
        f'\x00{{"actor":{_opt(actor)},"mandate_id":{_opt(mandate)},"payload":',
        f'","principal_id":{_opt(principal)},"reason_code":{_opt(reason)},"seq":',
        f',"type":{_quote(type_)}}}',
        not type_.startswith(DECISION_PREFIX),
    )


class ChainWalk:
    """Walks rows in `seq` order: checks every hash and link, and grows the Merkle tree over
    them, remembering the event hash and the tree at each sequence number in `wanted` (the
    sizes of heads to compare with). With `keep_state`, the events that change authority
    state are kept in `state_events` for replay (or handed to `state_sink` as they pass).

    `prev_hash=None` starts mid-ledger (a parallel range): the first row's link is then left
    to whoever joins the ranges, through `first_prev_hash`; the tree then covers this range
    only (as if it started at leaf 0). A walk that continues a verified tree is given that
    tree and the hash of its last event."""

    # Memo entries (about 0.6 kB each, with the row values they hold); a ledger whose events
    # share no values gains nothing from more.
    _MEMO_LIMIT = 20_000

    def __init__(
        self,
        wanted: set[int],
        expected_seq: int = 1,
        prev_hash: str | None = GENESIS_HASH,
        *,
        tree: Frontier | None = None,
        keep_state: bool = False,
        state_sink: Callable[[Row], None] | None = None,
    ) -> None:
        self.wanted = wanted
        self.expected_seq = expected_seq
        self.prev_hash = prev_hash
        self.first_prev_hash: str | None = None
        self.count = 0
        self.failure: ChainBreak | None = None
        self.seen: dict[int, str] = {}
        self.tree = tree.copy() if tree is not None else Frontier()
        self.trees: dict[int, Frontier] = {}
        self.keep_state = keep_state or state_sink is not None
        self.state_events: list[Row] = []
        self._sink = state_sink if state_sink is not None else self.state_events.append
        self._memo: dict[tuple[Any, ...], _Parts] = {}

    def feed(self, rows: Sequence[Row]) -> bool:
        """Consume rows; return False at the first break (kept in `failure`)."""
        if self.failure is not None:
            return False
        done = self._walk(rows)
        if done < len(rows):
            self.failure = self._diagnose(rows[done], self.expected_seq, self.prev_hash)
        return self.failure is None

    def _walk(self, rows: Sequence[Row]) -> int:
        """Check hashes and links, grow the tree, pass state events on; returns how many rows
        passed.

        The loop is the hot path of `ledger verify` (a million rows), so it is one loop: the
        parts of the event text around the payload, `seq`, `ts` and `prev_hash` are memoised
        by the row's other five values (`_parts`; it must produce exactly `event_json`, and
        any anomaly is re-examined by the plain checks for the message), and the tree's
        frontier is merged in place (`Frontier.extend`)."""
        if rows and self.prev_hash is None:
            self.first_prev_hash = rows[0][8]
            self.prev_hash = rows[0][8]
        memo = self._memo
        if len(memo) > self._MEMO_LIMIT:
            memo.clear()
        get, parts, sha256 = memo.get, _parts, hashlib.sha256
        expected, prev, wanted, seen = self.expected_seq, self.prev_hash, self.wanted, self.seen
        tree = self.tree
        nodes, size = tree.hashes, tree.size
        pop, push = nodes.pop, nodes.append
        sink = self._sink if self.keep_state else None
        start = expected
        try:
            for row in rows:
                (seq, ts, type_, actor, principal, mandate, reason, payload, prev_hash, digest) = (
                    row
                )
                # A value of a foreign type (5.0, "5") changes the text below: the hash catches it.
                if seq != expected or prev_hash != prev:
                    break
                key = (type_, actor, principal, mandate, reason)
                known = get(key)
                if known is None:
                    known = memo[key] = parts(key)
                head, middle, tail, changes_state = known
                node = sha256(
                    f'{head}{payload},"prev_hash":"{prev_hash}{middle}{seq},"ts":{ts}{tail}'.encode()
                ).digest()
                if node.hex() != digest:
                    break
                s = size
                while s & 1:
                    node = sha256(b"\x01" + pop() + node).digest()
                    s >>= 1
                push(node)
                size += 1
                if seq in wanted:
                    seen[seq] = digest
                    tree.size = size
                    self.trees[seq] = tree.copy()
                if changes_state and sink is not None:
                    sink(row)
                expected, prev = seq + 1, digest
        except (TypeError, ValueError):  # a value of a foreign type was written into a row
            pass
        tree.size = size
        done = expected - start
        self.expected_seq, self.prev_hash = expected, prev
        self.count += done
        return done

    @staticmethod
    def _diagnose(row: Row, expected: int, prev: str | None) -> ChainBreak:
        seq, type_, prev_hash = row[0], row[2], row[8]
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                return ChainBreak(
                    expected, None, f"missing: the sequence jumps from {expected - 1} to {seq}"
                )
            return ChainBreak(
                expected, str(type_), f"out of order: expected {expected}, found {seq}"
            )
        if prev_hash != prev:
            return ChainBreak(seq, str(type_), "prev_hash does not link to the event before it")
        return ChainBreak(seq, str(type_), "hash does not match its contents (altered)")
