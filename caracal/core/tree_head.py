"""Signed tree heads: what the workspace ledger key vouches for after every committed write.

A head says "this workspace's ledger had `size` events, with Merkle root `root` and last event
hash `last_hash`, at time `ts`". Its signature is ES256 (raw r||s, low-S, base64url) over the
canonical JSON (sorted keys, no spaces, ASCII) of

    {"kind": "caracal-tree-head", "last": LAST_HASH_HEX, "root": ROOT_HEX, "size": N,
     "ts": MICROSECONDS, "v": 1, "ws": WORKSPACE_ID}

by the key `kid`, whose public half is pinned in the workspace's `keys/` folder (and whose
fingerprint is the SHA-256 of its SubjectPublicKeyInfo DER). `size` 0 never occurs: a
workspace's ledger starts with its `workspace.created` event.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core.keys import b64url, b64url_decode, sign, verify

FORMAT = "caracal-tree-head/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = {"format", "workspace_id", "size", "root", "last_hash", "ts", "kid", "signature"}
_OPTIONAL = {"key_sha256", "recorded_at"}


class HeadFormatError(ValueError):
    """Not a tree head in Caracal's format."""


def key_fingerprint(public: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo DER, in hex."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def head_message(workspace_id: str, size: int, root: str, last_hash: str, ts_us: int) -> bytes:
    """The canonical JSON above, assembled directly (it is built in every write; a test holds
    it equal to `canonical_bytes` of the dict)."""
    return (
        f'{{"kind":"caracal-tree-head","last":{_quote(last_hash)},"root":{_quote(root)},'
        f'"size":{int(size)},"ts":{int(ts_us)},"v":1,"ws":{_quote(workspace_id)}}}'
    ).encode("ascii")


@dataclass(frozen=True, slots=True)
class TreeHead:
    workspace_id: str
    size: int
    root: str  # hex Merkle root over the first `size` events
    last_hash: str  # hex hash of event `size`
    ts_us: int
    kid: str
    signature: str  # base64url, raw r||s

    def message(self) -> bytes:
        return head_message(self.workspace_id, self.size, self.root, self.last_hash, self.ts_us)

    def verify(self, public: ec.EllipticCurvePublicKey) -> bool:
        try:
            raw = b64url_decode(self.signature)
        except ValueError:
            return False
        return verify(public, self.message(), raw)

    def same_tree(self, other: TreeHead) -> bool:
        return (self.workspace_id, self.size, self.root, self.last_hash) == (
            other.workspace_id,
            other.size,
            other.root,
            other.last_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "workspace_id": self.workspace_id,
            "size": self.size,
            "root": self.root,
            "last_hash": self.last_hash,
            "ts": self.ts_us,
            "kid": self.kid,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any) -> TreeHead:
        """A head read from outside (a head file, a witness, an auditor's saved copy):
        every field present and well-formed, nothing unknown."""
        if not isinstance(data, dict):
            raise HeadFormatError("a tree head is a JSON object")
        keys = set(data)
        if not keys >= _FIELDS or keys - _FIELDS - _OPTIONAL:
            extra = sorted(keys - _FIELDS - _OPTIONAL)
            missing = sorted(_FIELDS - keys)
            raise HeadFormatError(
                f"unknown field {extra[0]!r}" if extra else f"field {missing[0]!r} is missing"
            )
        if data["format"] != FORMAT:
            raise HeadFormatError(f"format {data['format']!r} is not {FORMAT}")
        for name in ("workspace_id", "kid", "signature"):
            if not isinstance(data[name], str) or not data[name]:
                raise HeadFormatError(f"{name} must be a non-empty string")
        for name in ("size", "ts"):
            if type(data[name]) is not int or data[name] < 0:
                raise HeadFormatError(f"{name} must be a non-negative integer")
        for name in ("root", "last_hash"):
            if not isinstance(data[name], str) or not _HEX64.match(data[name]):
                raise HeadFormatError(f"{name} must be 64 lowercase hex digits")
        return cls(
            data["workspace_id"],
            data["size"],
            data["root"],
            data["last_hash"],
            data["ts"],
            data["kid"],
            data["signature"],
        )


def sign_head(
    private: ec.EllipticCurvePrivateKey,
    kid: str,
    workspace_id: str,
    size: int,
    root: str,
    last_hash: str,
    ts_us: int,
) -> TreeHead:
    message = head_message(workspace_id, size, root, last_hash, ts_us)
    return TreeHead(workspace_id, size, root, last_hash, ts_us, kid, b64url(sign(private, message)))
