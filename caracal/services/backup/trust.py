"""Who signed an archive, and whether to believe them.

Every archive's manifest (which lists every member's SHA-256 and holds the signed tree head
the backup was taken at) is signed by the workspace's ledger key, in `manifest.sig`. The key's
public half travels in the archive too, but a key that comes with the data proves nothing:
verify and restore accept the signature only from a key that is, in order,

1. pinned by a workspace in this Caracal home with the archive's workspace id (a backup of a
   workspace you have: nothing to decide),
2. the fingerprint the operator gives with `--trust-key` (checked with the archive's owner), or
3. accepted explicitly with `--trust-archive-key` (recorded in the restored ledger).

Otherwise they refuse (exit 7) and show the fingerprint, so the operator can decide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.errors import IntegrityError
from caracal.core.keys import b64url, b64url_decode, load_public, sign, verify
from caracal.core.tree_head import HeadFormatError, TreeHead, key_fingerprint
from caracal.services import ledger_keys
from caracal.services.head_witnesses import HEAD_FILE, parse_head
from caracal.services.workspaces import WorkspaceManager

SIGNATURE_FORMAT = "caracal-manifest-signature/1"


@dataclass(frozen=True)
class TrustedSigner:
    kid: str
    fingerprint: str
    trust: str  # how the key came to be trusted, in words (recorded by a restore)
    public: ec.EllipticCurvePublicKey


def signature_document(
    private: ec.EllipticCurvePrivateKey, kid: str, fingerprint: str, manifest: bytes
) -> bytes:
    return (
        json.dumps(
            {
                "format": SIGNATURE_FORMAT,
                "kid": kid,
                "key_sha256": fingerprint,
                "signature": b64url(sign(private, manifest)),
            },
            sort_keys=True,
        ).encode()
        + b"\n"
    )


def normalise_fingerprint(text: str) -> str:
    value = text.strip().lower().removeprefix("sha256:")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise IntegrityError(
            f"--trust-key {text!r} is not a key fingerprint (64 hex digits, as `caracal backup "
            "create` and `backup verify` print it)."
        )
    return value


def manifest_tree_head(manifest: dict[str, Any]) -> TreeHead:
    try:
        head = TreeHead.from_dict(manifest["ledger"]["tree_head"])
    except (KeyError, TypeError, HeadFormatError) as exc:
        raise IntegrityError(f"The archive's manifest has no valid tree head ({exc}).") from None
    if head.workspace_id != manifest.get("workspace_id"):
        raise IntegrityError("The archive's tree head belongs to another workspace.")
    return head


def archive_pins(small: dict[str, bytes]) -> dict[str, Any]:
    """The ledger public keys the archive carries, by kid (covered by the manifest's hashes,
    so trusted once the manifest's signature is)."""
    pins: dict[str, Any] = {}
    for member, data in small.items():
        if member.startswith("keys/ledger-"):
            kid = member.removeprefix("keys/ledger-").removesuffix(".pub.pem")
            try:
                pins[kid] = load_public(data.decode())
            except Exception:
                raise IntegrityError(f"Archive member {member} is not a public key.") from None
    return pins


def signed_tree_head(manifest: dict[str, Any], pins: dict[str, Any]) -> TreeHead:
    """The tree head the backup was taken at, with a valid signature by an archived pin."""
    head = manifest_tree_head(manifest)
    key = pins.get(head.kid)
    if key is None or not head.verify(key):
        raise IntegrityError(
            "The archive's tree head is not signed by the workspace's ledger key (forged)."
        )
    if (head.size, head.last_hash) != (
        manifest["ledger"]["head_seq"],
        manifest["ledger"]["head_hash"],
    ):
        raise IntegrityError("The archive's tree head does not match its manifest.")
    return head


def archive_signer(
    manifest: dict[str, Any],
    manifest_bytes: bytes,
    signature: bytes | None,
    pins: dict[str, ec.EllipticCurvePublicKey],
    manager: WorkspaceManager,
    *,
    trust_keys: list[str] | None = None,
    trust_archive_key: bool = False,
) -> TrustedSigner:
    """The key that signed the manifest, once its signature verifies and the key is trusted."""
    if signature is None:
        raise IntegrityError(
            "The archive is not signed (no manifest.sig): it was altered, or it is not a "
            "Caracal backup."
        )
    try:
        doc = strict_loads(signature)
        if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
            raise StrictJSONError("not a manifest signature")
        kid, claimed, raw = str(doc["kid"]), str(doc["key_sha256"]), b64url_decode(doc["signature"])
    except (StrictJSONError, KeyError, TypeError, ValueError):
        raise IntegrityError("The archive's manifest signature is malformed.") from None
    public = pins.get(kid)
    if public is None:
        raise IntegrityError(
            f"The archive's manifest is signed by ledger key {kid}, whose public key the "
            "archive does not carry."
        )
    fingerprint = key_fingerprint(public)
    if claimed != fingerprint or not verify(public, manifest_bytes, raw):
        raise IntegrityError(
            "The archive's manifest signature does not verify: the manifest was altered after "
            "it was signed."
        )
    workspace_id = str(manifest.get("workspace_id"))
    owner = _pinned_by(manager, workspace_id, fingerprint)
    if owner is not None:
        return TrustedSigner(kid, fingerprint, f"pinned by workspace {owner}", public)
    if trust_keys:
        if fingerprint not in {normalise_fingerprint(k) for k in trust_keys}:
            raise IntegrityError(
                f"The archive is signed by ledger key sha256:{fingerprint}, not by a key you "
                "trust (--trust-key); refusing it."
            )
        return TrustedSigner(kid, fingerprint, "the fingerprint given with --trust-key", public)
    if trust_archive_key:
        return TrustedSigner(kid, fingerprint, "accepted with --trust-archive-key", public)
    raise IntegrityError(
        f"The archive is signed by ledger key sha256:{fingerprint}, which no workspace here "
        "pins. If its owner confirms that fingerprint, pass --trust-key "
        f"sha256:{fingerprint} (or --trust-archive-key to accept it unchecked)."
    )


def _pinned_by(manager: WorkspaceManager, workspace_id: str, fingerprint: str) -> str | None:
    """The workspace in this home (or deleted from it) with this id that pins this key, if
    any. Read from the folders only (the head file names the workspace id), never a store."""
    folders = [(name, manager.home.workspace(name).keys) for name in manager.names()]
    folders += [(f"{name} (deleted)", path) for name, path in manager.retired_key_folders()]
    for name, keys in folders:
        try:
            held = parse_head((keys / HEAD_FILE).read_bytes(), HEAD_FILE)
        except (OSError, HeadFormatError):
            continue
        if held.workspace_id != workspace_id:
            continue
        if any(key_fingerprint(k) == fingerprint for k in ledger_keys.pinned_keys(keys).values()):
            return name
    return None
