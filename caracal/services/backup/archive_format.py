"""What a Caracal backup archive is: its format name and version, the members it may hold,
the bounds on its size, and the manifest that declares every member's size and SHA-256.

The container is a gzip'd tar (`archive_writer` writes it, `archive_reader` reads it), wrapped
in the lock envelope (`envelope`) when made with a lock key, the only way it carries secrets.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from caracal.core.errors import IntegrityError, ValidationError

FORMAT = "caracal-backup"
# 2: every archive carries manifest.sig, the workspace ledger key's signature over the
# manifest, and the manifest holds the signed tree head the backup was taken at.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
# Right after the manifest; the only member the manifest cannot list (it signs the manifest).
SIGNATURE = "manifest.sig"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_SIGNATURE_BYTES = 4096
GZIP_LEVEL = 1  # speed over size: ledgers are large and compress well anyway
# The gzip header the writer produces (no name, no mtime); a reader accepts no other.
GZIP_HEADER = bytes.fromhex("1f8b08000000000004ff")
_FIXED_MEMBERS = frozenset(
    {
        MANIFEST,
        "config.yaml",
        "config-secrets.json",
        "flow_state.json",
        "providers.json",
        "secrets.jsonl",
    }
)
_TABLE_MEMBER = re.compile(r"^tables/[a-z_]{1,48}\.jsonl$")
_PIN_MEMBER = re.compile(r"^keys/ledger-k_[0-9a-f]{16}\.pub\.pem$")


def max_total_bytes() -> int:
    """Upper bound on an archive's uncompressed content (decompression bombs)."""
    return int(os.environ.get("CARACAL_BACKUP_MAX_BYTES", str(64 * 1024**3)))


def allowed_member(name: str) -> bool:
    return name in _FIXED_MEMBERS or bool(_TABLE_MEMBER.match(name) or _PIN_MEMBER.match(name))


@dataclass(frozen=True)
class MemberInfo:
    name: str
    size: int
    sha256: str


def parse_manifest(data: bytes, label: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        raise IntegrityError(f"{label} has a damaged manifest.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IntegrityError(f"{label} is not a Caracal backup.")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        raise ValidationError(
            f"{label} uses backup format version {version!r}; this Caracal reads version "
            f"{FORMAT_VERSION}. Use a matching Caracal release."
        )
    members = manifest.get("members")
    if not isinstance(members, dict) or not all(
        isinstance(k, str)
        and allowed_member(k)
        and isinstance(v, dict)
        and isinstance(v.get("size"), int)
        and v["size"] >= 0
        and isinstance(v.get("sha256"), str)
        for k, v in members.items()
    ):
        raise IntegrityError(f"{label} has a malformed manifest member list.")
    ledger, tables = manifest.get("ledger"), manifest.get("tables")
    if not (
        isinstance(ledger, dict)
        and isinstance(ledger.get("head_seq"), int)
        and isinstance(ledger.get("head_hash"), str)
        and isinstance(tables, dict)
        and all(isinstance(v, dict) and isinstance(v.get("rows"), int) for v in tables.values())
        and isinstance(manifest.get("workspace_id"), str)
    ):
        raise IntegrityError(f"{label} has an incomplete manifest (ledger, tables or workspace).")
    total = sum(int(v["size"]) for v in members.values())
    if total > max_total_bytes():
        raise IntegrityError(
            f"{label} would expand to {total:,} bytes, over the {max_total_bytes():,}-byte limit; "
            "refusing it (set CARACAL_BACKUP_MAX_BYTES to allow larger archives)."
        )
    return manifest
