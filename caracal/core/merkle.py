"""The ledger's Merkle tree (RFC 6962 / RFC 9162 hashing) and its proofs, in plain Python.

This module needs nothing but the standard library, so an auditor can verify Caracal's proofs
with it (or port it) without the store. Definitions, over SHA-256:

- a **leaf** is one ledger event, its leaf data the event's canonical JSON; its leaf hash,
  `SHA-256(0x00 || canonical JSON)`, is the event's own hash (the `hash` column, hex), so the
  chain and the tree share one hash per event (`caracal.core.ledger.event_hash`);
- an interior node is `SHA-256(0x01 || left || right)`;
- the root of `n` leaves is MTH of RFC 6962 section 2.1: for `n > 1`, split at `k`, the largest
  power of two below `n`; the empty tree's root is `SHA-256("")`.

Leaf indexes are 0-based: the event with sequence number `seq` is leaf `seq - 1`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256

# The root of the perfect subtree of `size` leaves (a power of two) starting at leaf `start`
# (a multiple of `size`).
SubtreeRoot = Callable[[int, int], bytes]


def leaf_hash(event_hash_hex: str) -> bytes:
    """An event's leaf hash: its own hash, as bytes."""
    return bytes.fromhex(event_hash_hex)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees that make up a tree of `size` leaves, largest first
    (one per set bit of `size`): enough to append leaves and compute the root in O(log n)."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def append(
        self, leaf: bytes, keep_from_level: int | None = None
    ) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash. Returns the perfect subtrees completed at `keep_from_level` or
        above, as (level, index, hash): the subtree of `2**level` leaves starting at leaf
        `index * 2**level` (what a store keeps to answer proofs quickly)."""
        completed: list[tuple[int, int, bytes]] = []
        node, size, level = leaf, self.size, 0
        hashes = self.hashes
        while size & 1:
            node = _sha256(b"\x01" + hashes.pop() + node).digest()
            size >>= 1
            level += 1
            if keep_from_level is not None and level >= keep_from_level:
                completed.append((level, ((self.size + 1) >> level) - 1, node))
        hashes.append(node)
        self.size += 1
        return completed

    def extend_keeping(
        self, leaves: Iterable[bytes], keep_from_level: int
    ) -> list[tuple[int, int, bytes]]:
        """`append` for many leaves, in one loop (the append path of every write)."""
        completed: list[tuple[int, int, bytes]] = []
        hashes, size = self.hashes, self.size
        pop, push, keep = hashes.pop, hashes.append, completed.append
        for leaf in leaves:
            node, s, level = leaf, size, 0
            while s & 1:
                node = _sha256(b"\x01" + pop() + node).digest()
                s >>= 1
                level += 1
                if level >= keep_from_level:
                    keep((level, ((size + 1) >> level) - 1, node))
            push(node)
            size += 1
        self.size = size
        return completed

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes (the hot loop of verification: nothing else kept)."""
        hashes, size = self.hashes, self.size
        pop, push = hashes.pop, hashes.append
        for leaf in leaves:
            node, s = leaf, size
            while s & 1:
                node = _sha256(b"\x01" + pop() + node).digest()
                s >>= 1
            push(node)
            size += 1
        self.size = size

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        node = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            node = _sha256(b"\x01" + left + node).digest()
        return node

    def encode(self) -> str:
        """The frontier as stored with the ledger head: its hashes in hex, concatenated."""
        return "".join(h.hex() for h in self.hashes)

    @classmethod
    def decode(cls, size: int, text: str) -> Frontier:
        raw = bytes.fromhex(text)
        if len(raw) != HASH_BYTES * size.bit_count():
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} hashes")
        return cls(size, [raw[i : i + HASH_BYTES] for i in range(0, len(raw), HASH_BYTES)])

    def merged(self, right: Frontier) -> Frontier:
        """This tree followed by the leaves of `right` (a frontier computed as if its leaves
        started at 0): exact when each of right's subtrees lands aligned, i.e. when this
        tree's size is a multiple of right's largest subtree."""
        hashes, total = list(self.hashes), self.size
        bits = [b for b in range(right.size.bit_length() - 1, -1, -1) if right.size >> b & 1]
        for bit, subtree_root in zip(bits, right.hashes, strict=True):
            node, subtree_size = subtree_root, 1 << bit
            if total % subtree_size:
                raise ValueError("the right part's subtrees would not be aligned")
            t = total
            while t & subtree_size:  # the stack top is this subtree's left sibling
                node = _sha256(b"\x01" + hashes.pop() + node).digest()
                t -= subtree_size
                subtree_size <<= 1
            hashes.append(node)
            total += 1 << bit
        return Frontier(total, hashes)


def root_of(leaves: Iterable[bytes]) -> bytes:
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


# ---- proofs ----------------------------------------------------------------------------------
def range_root(start: int, end: int, subtree: SubtreeRoot) -> bytes:
    """MTH of leaves [start, end), built from aligned perfect subtrees."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return subtree(start, n)
    k = largest_power_of_two_below(n)
    return node_hash(range_root(start, start + k, subtree), range_root(start + k, end, subtree))


def inclusion_path(index: int, size: int, subtree: SubtreeRoot) -> list[bytes]:
    """RFC 6962 PATH(index, D[size]): the sibling hashes from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            path.append(range_root(start + k, end, subtree))
            end = start + k
        else:
            path.append(range_root(start, start + k, subtree))
            start = start + k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, subtree: SubtreeRoot) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[new_size]): proves the first tree is a prefix of the second."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    path: list[bytes] = []

    def sub(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                path.append(range_root(start, end, subtree))
            return
        k = largest_power_of_two_below(n)
        if m <= k:
            sub(m, start, start + k, whole)
            path.append(range_root(start + k, end, subtree))
        else:
            sub(m - k, start + k, end, False)
            path.append(range_root(start, start + k, subtree))

    sub(old_size, 0, new_size, True)
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if not path:
        return False
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node itself
        proof.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
