"""Check Caracal's ledger proofs without the store: the documents `caracal ledger head`,
`caracal ledger prove SEQ` and `caracal ledger verify --since HEAD.json --json` print.

Needs only the standard library and `cryptography` (for the ES256 signature of a head), so an
auditor can run it anywhere:

    python -m caracal.core.proofs --key keys/ledger-KID.pub.pem PROOF.json

Formats (all JSON; hashes are lowercase hex, signatures base64url):

- a **head** is `caracal.core.tree_head.TreeHead.to_dict()`: `format`
  ("caracal-tree-head/1"), `workspace_id`, `size`, `root`, `last_hash`, `ts` (microseconds),
  `kid`, `signature` (ES256 over the canonical JSON described in `caracal.core.tree_head`);
- an **inclusion proof** (`format` "caracal-inclusion-proof/1") holds `event` (the stored event:
  `seq`, `ts`, `type`, `actor`, `principal_id`, `mandate_id`, `reason_code`, `payload` as
  canonical JSON text, `prev_hash`, `hash`), `leaf_index` (= seq - 1), `tree_size`,
  `audit_path` (sibling hashes, leaf first) and `head`;
- a **consistency proof** (`format` "caracal-consistency-proof/1") holds `old_head`,
  `new_head` and `proof` (RFC 6962 PROOF(old size, new tree)).

An event's hash is SHA-256 of its canonical JSON (`caracal.core.ledger.event_json`); its leaf
hash is SHA-256(0x00 || event hash bytes); see `caracal.core.merkle` for the tree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.keys import load_public
from caracal.core.ledger import event_hash
from caracal.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from caracal.core.tree_head import HeadFormatError, TreeHead

INCLUSION_FORMAT = "caracal-inclusion-proof/1"
CONSISTENCY_FORMAT = "caracal-consistency-proof/1"


class ProofError(ValueError):
    """The document is not a proof, or it does not prove what it claims."""


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise ProofError(f"{what} must be a list of hashes")
    try:
        out = [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise ProofError(f"{what} holds something that is not a hex hash") from None
    if any(len(h) != 32 for h in out):
        raise ProofError(f"{what} holds a hash that is not 32 bytes")
    return out


def _head(data: Any, what: str, key: ec.EllipticCurvePublicKey | None) -> TreeHead:
    try:
        head = TreeHead.from_dict(data)
    except HeadFormatError as exc:
        raise ProofError(f"{what}: {exc}") from None
    if key is not None and not head.verify(key):
        raise ProofError(f"{what} is not signed by the given key")
    return head


def check_inclusion(doc: Any, key: ec.EllipticCurvePublicKey | None) -> TreeHead:
    """The event in `doc` is in the tree its signed head describes. Returns the head."""
    if not isinstance(doc, dict) or doc.get("format") != INCLUSION_FORMAT:
        raise ProofError("not an inclusion proof")
    head = _head(doc.get("head"), "the proof's head", key)
    event = doc.get("event")
    try:
        assert isinstance(event, dict)
        digest = event_hash(
            event["seq"],
            event["ts"],
            event["type"],
            event["actor"],
            event["principal_id"],
            event["mandate_id"],
            event["reason_code"],
            event["payload"],
            event["prev_hash"],
        )
    except (AssertionError, KeyError, TypeError, ValueError):
        raise ProofError("the proof's event is malformed") from None
    if digest != event.get("hash"):
        raise ProofError("the event's contents do not match its hash")
    index, size = doc.get("leaf_index"), doc.get("tree_size")
    if type(index) is not int or type(size) is not int or index != event["seq"] - 1:
        raise ProofError("the proof's leaf index does not match the event")
    if size != head.size:
        raise ProofError("the proof is for another tree than its head")
    path = _hashes(doc.get("audit_path"), "the audit path")
    if not verify_inclusion(leaf_hash(digest), index, size, path, bytes.fromhex(head.root)):
        raise ProofError("the audit path does not lead to the signed root")
    return head


def check_consistency(doc: Any, key: ec.EllipticCurvePublicKey | None) -> TreeHead:
    """The new head's tree extends the old head's. Returns the new head."""
    if not isinstance(doc, dict) or doc.get("format") != CONSISTENCY_FORMAT:
        raise ProofError("not a consistency proof")
    old = _head(doc.get("old_head"), "the old head", key)
    new = _head(doc.get("new_head"), "the new head", key)
    if old.workspace_id != new.workspace_id:
        raise ProofError("the two heads belong to different workspaces")
    path = _hashes(doc.get("proof"), "the proof")
    if not verify_consistency(
        old.size, new.size, bytes.fromhex(old.root), bytes.fromhex(new.root), path
    ):
        raise ProofError(
            f"the tree of {new.size} events does not extend the tree of {old.size} events"
        )
    return new


def check(doc: Any, key: ec.EllipticCurvePublicKey | None) -> str:
    """Check any of the three documents; a sentence saying what was proved."""
    kind = doc.get("format") if isinstance(doc, dict) else None
    if kind == INCLUSION_FORMAT:
        head = check_inclusion(doc, key)
        seq = doc["event"]["seq"]
        return f"event {seq} is in the ledger of {head.size} events with root {head.root}"
    if kind == CONSISTENCY_FORMAT:
        new = check_consistency(doc, key)
        old = doc["old_head"]["size"]
        return f"the ledger of {new.size} events extends the ledger of {old} events"
    head = _head(doc, "the head", key)
    return f"a signed head: {head.size} events, root {head.root}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m caracal.core.proofs", description="Check a Caracal ledger proof."
    )
    parser.add_argument("document", type=Path, help="a head, inclusion or consistency proof")
    parser.add_argument("--key", type=Path, help="the workspace's pinned ledger key (PEM)")
    args = parser.parse_args(argv)
    try:
        key = load_public(args.key.read_text()) if args.key else None
        doc = strict_loads(args.document.read_bytes())
        print(("verified: " if key else "consistent (signature not checked): ") + check(doc, key))
    except (OSError, StrictJSONError, ProofError, ValueError) as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
