"""The signed tree head: signed in every write, checked before it is built upon, compared with
the copies kept outside the store when a workspace opens.

What each check catches, for someone who can write the store but not the workspace folder:

- before every append, the stored head must carry a valid signature by a pinned ledger key
  and its frontier must fold to its root (a forged head or tree is never extended), and this
  process must not have seen a larger tree committed (a rollback under a running process);
- when a workspace opens (CLI, Flow, runtime), the store's head must be the head file's and
  every readable witness's head or an extension of it, and the store's newest event must be
  the one the head names (`RollbackError`, exit 7, until `caracal ledger accept-rollback`).

`caracal ledger verify` checks everything else (every event, the whole tree, the state).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection

from caracal.core.errors import IntegrityError, RollbackError
from caracal.core.keys import load_private
from caracal.core.merkle import Frontier
from caracal.core.tree_head import TreeHead, key_fingerprint, sign_head
from caracal.services import ledger_keys
from caracal.services.head_witnesses import (
    HEAD_FILE,
    HeadPublisher,
    HttpWitness,
    PathWitness,
    RedisWitness,
    Witness,
)
from caracal.store import ledger_rows, secret_rows
from caracal.store.ledger_rows import Appended, StoredHead

if TYPE_CHECKING:
    from caracal.home.config_model import WitnessSettings
    from caracal.services.secrets import SecretVault

log = logging.getLogger(__name__)


def events_between(first: int, last: int) -> str:
    """`event 7` or `events 7-9`."""
    return f"event {first}" if first == last else f"events {first}-{last}"


def head_time(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class PinnedKeys:
    """The ledger public keys pinned in the workspace folder, by kid (re-read on a miss)."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self._keys: dict[str, ec.EllipticCurvePublicKey] | None = None

    def get(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        if self._keys is None or kid not in self._keys:
            self._keys = ledger_keys.pinned_keys(self.keys_dir)
        return self._keys.get(kid)

    def all(self) -> dict[str, ec.EllipticCurvePublicKey]:
        self._keys = ledger_keys.pinned_keys(self.keys_dir)
        return dict(self._keys)

    def check(self, head: TreeHead, what: str) -> None:
        key = self.get(head.kid)
        if key is None:
            raise IntegrityError(
                f"{what} is signed by ledger key {head.kid}, which this workspace did not pin "
                "in keys/ (a head signed elsewhere)."
            )
        if not head.verify(key):
            raise IntegrityError(f"{what} does not carry a valid signature (it was forged).")


def witnesses_from(
    settings: list[WitnessSettings], workspace_dir: Path, workspace_id: Callable[[], str]
) -> list[Witness]:
    out: list[Witness] = []
    for witness in settings:
        if witness.path:
            path = Path(witness.path).expanduser()
            out.append(PathWitness(path if path.is_absolute() else workspace_dir / path))
        elif witness.redis_url:
            key = witness.redis_key or f"caracal:ledger-head:{workspace_id()}"
            out.append(RedisWitness(witness.redis_url, key, witness.timeout_seconds))
        elif witness.http_url:
            out.append(HttpWitness(witness.http_url, witness.timeout_seconds))
    return out


@dataclass(frozen=True)
class Discrepancy:
    """A copy outside the store that the store's ledger does not extend."""

    source: str
    recorded: TreeHead
    stored: TreeHead
    kind: str  # "rollback" | "fork"

    def describe(self) -> str:
        stored, recorded = self.stored, self.recorded
        if self.kind == "rollback":
            return (
                f"the store's ledger ends at event {stored.size} (signed {head_time(stored.ts_us)}) "
                f"but the {self.source} recorded event {recorded.size} "
                f"(signed {head_time(recorded.ts_us)}): "
                f"{events_between(stored.size + 1, recorded.size)} gone (the store was rolled "
                "back or replaced)"
            )
        return (
            f"the {self.source} recorded a ledger of {recorded.size} events (signed "
            f"{head_time(recorded.ts_us)}) that the store's ledger does not contain: its "
            "history was replaced"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "recorded": self.recorded.to_dict(),
            "stored": self.stored.to_dict(),
        }


class LedgerHeads:
    """Signing, trusting and publishing the head of one workspace's ledger."""

    def __init__(
        self,
        *,
        workspace_id: Callable[[], str],
        keys_dir: Path,
        vault: Callable[[], SecretVault],
        witnesses: Callable[[], list[Witness]],
    ) -> None:
        self._workspace_id = workspace_id
        self.keys_dir = keys_dir
        self._vault = vault
        self._witnesses = witnesses
        self.pinned = PinnedKeys(keys_dir)
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._publisher: HeadPublisher | None = None
        self._lock = threading.Lock()
        self._trusted: StoredHead | None = None  # the last head this process signed or checked
        self._tree: Frontier | None = None  # the trusted head's tree, decoded
        self._signed_with: str | None = None  # the ledger key of the last committed head
        self._committed = 0  # the largest tree this process saw committed

    @property
    def workspace_id(self) -> str:
        return self._workspace_id()

    @property
    def head_file(self) -> PathWitness:
        return PathWitness(self.keys_dir / HEAD_FILE, name="head file (keys/ledger-head.json)")

    @property
    def publisher(self) -> HeadPublisher:
        if self._publisher is None:
            self._publisher = HeadPublisher(self.head_file, self._witnesses())
        return self._publisher

    # ---- inside a write transaction --------------------------------------------------------
    def trust(self, head: StoredHead) -> None:
        """Refuse to build on a head this process cannot vouch for."""
        if head.size < self._committed:
            raise RollbackError(
                f"The store's ledger ends at event {head.size}, but this process saw event "
                f"{self._committed} committed: the store was rolled back underneath it. Run "
                "`caracal ledger verify`, then `caracal ledger accept-rollback` if it is expected."
            )
        if head == self._trusted:
            return
        signed = head.signed(self.workspace_id)
        if signed is None:
            if head.size == 0:  # a new store: its first append signs the first head
                return
            raise IntegrityError(
                f"The ledger head (event {head.size}) is not signed; run `caracal ledger verify`."
            )
        self.pinned.check(signed, "The store's ledger head")
        try:
            folded = Frontier.decode(head.size, head.frontier or "").root().hex()
        except ValueError:
            folded = None
        if folded != head.root:
            raise IntegrityError(
                "The ledger head's stored tree does not match its signed root; run "
                "`caracal ledger verify`."
            )
        self._trusted, self._tree = head, None

    def tree_of(self, head: StoredHead) -> Frontier | None:
        """The trusted head's tree, already decoded (a copy to append to), or None."""
        if head == self._trusted and self._tree is not None:
            return self._tree.copy()
        return None

    def sign(self, conn: Connection, appended: Appended, ts_us: int) -> TreeHead:
        """Sign the tree of an append and write it to the head row (same transaction)."""
        kid, private = self._signing_key(conn)
        head = sign_head(
            private, kid, self.workspace_id, appended.size, appended.root, appended.last_hash, ts_us
        )
        self._trusted = ledger_rows.write_head(conn, appended, ts_us, kid, head.signature)
        self._tree = appended.frontier
        return head

    def sign_stored(self, conn: Connection, ts_us: int) -> TreeHead:
        """Sign the head row as it is (after a migration computed its tree)."""
        stored = ledger_rows.read_head(conn, lock=True)
        if stored.root is None:
            raise IntegrityError(
                "The ledger head has no tree to sign; run `caracal ledger verify`."
            )
        tree = Frontier.decode(stored.size, stored.frontier or "")
        return self.sign(
            conn, Appended([], stored.size, stored.last_hash, stored.root, tree), ts_us
        )

    def committed(self, head: TreeHead) -> None:
        """After the transaction that signed `head` committed."""
        with self._lock:
            self._committed = max(self._committed, head.size)
            self._signed_with = head.kid
        self.publisher.publish(head)

    def forget_commits(self) -> None:
        """After an operator accepted a rollback: the smaller tree is the one to build on."""
        with self._lock:
            self._committed = 0
            self._trusted, self._tree, self._signed_with = None, None, None

    def _signing_key(self, conn: Connection) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The key to sign with. Once a head signed with a key has committed, that key is
        used without a lookup (a workspace has one ledger key; a new one is made only when
        none exists or its private half is missing). Before that, which kid is current is
        read in the transaction, so a key created in a rolled-back one is never reused."""
        if self._signed_with is not None and self._signed_with in self._private:
            return self._signed_with, self._private[self._signed_with]
        found = ledger_keys.current(conn)
        if found is not None and found[0] in self._private:
            return found[0], self._private[found[0]]
        sealed = secret_rows.get(conn, found[1]) if found is not None else None
        vault = self._vault()
        if found is None or sealed is None:
            # No key yet, or its private half did not come with a backup without secrets.
            kid, private = ledger_keys.create(conn, vault, self.keys_dir)
        else:
            kid, private = found[0], load_private(vault.cipher.open(sealed, found[1]))
        self._private[kid] = private
        return kid, private

    def private_key(self, conn: Connection, kid: str) -> ec.EllipticCurvePrivateKey:
        """The private half of ledger key `kid` (to sign a backup's manifest, say)."""
        if kid in self._private:
            return self._private[kid]
        ref = ledger_keys.secret_ref(conn, kid)
        sealed = secret_rows.get(conn, ref) if ref else None
        if ref is None or sealed is None:
            raise IntegrityError(
                f"The private half of ledger key {kid} is not in this workspace's vault."
            )
        private = load_private(self._vault().cipher.open(sealed, ref))
        self._private[kid] = private
        return private

    def fingerprint(self, kid: str) -> str | None:
        key = self.pinned.get(kid)
        return key_fingerprint(key) if key is not None else None

    # ---- when a workspace opens ------------------------------------------------------------
    def recorded(self) -> list[tuple[str, TreeHead | None, str | None]]:
        """Every copy's head, read now. Read them before the store's snapshot: a copy is only
        written after its commit, so nothing read first can be ahead of the store honestly."""
        return self.publisher.recorded()

    def discrepancies(
        self,
        conn: Connection,
        stored: TreeHead,
        recorded: list[tuple[str, TreeHead | None, str | None]],
    ) -> list[Discrepancy]:
        """Every copy outside the store whose head the store's ledger does not extend.
        Copies that cannot be read, or that hold a head nobody pinned, are logged and skipped:
        they prove nothing either way."""
        found: list[Discrepancy] = []
        for source, held, problem in recorded:
            if problem:
                log.warning("ledger head at %s: %s", source, problem)
                continue
            if held is None:
                continue
            if held.workspace_id != stored.workspace_id:
                log.warning("ledger head at %s belongs to workspace %s", source, held.workspace_id)
                continue
            try:
                self.pinned.check(held, f"The head at {source}")
            except IntegrityError as exc:
                log.warning("%s", exc.message)
                continue
            if held.size > stored.size:
                found.append(Discrepancy(source, held, stored, "rollback"))
            elif held.size == stored.size:
                if not held.same_tree(stored):
                    found.append(Discrepancy(source, held, stored, "fork"))
            elif ledger_rows.event_hash(conn, held.size) != held.last_hash:
                found.append(Discrepancy(source, held, stored, "fork"))
        return found

    def check_at_open(
        self, conn: Connection, recorded: list[tuple[str, TreeHead | None, str | None]]
    ) -> TreeHead | None:
        """The store's head, checked against its signature, its newest event and every copy
        kept outside the store. None when the head is unsigned and no copy exists (the first
        open after the upgrade that introduced signed heads: the caller signs it)."""
        try:
            stored_row = ledger_rows.read_head(conn)
        except LookupError:
            raise IntegrityError(
                "The store's ledger head row is missing (it was deleted); run `caracal ledger "
                "verify`."
            ) from None
        stored = stored_row.signed(self.workspace_id)
        if stored is None:
            if self.head_file.path.exists():
                raise IntegrityError(
                    f"The store's ledger head (event {stored_row.size}) is not signed, but this "
                    "workspace has signed heads before: the store was tampered with. Run "
                    "`caracal ledger verify`."
                )
            return None
        self.pinned.check(stored, "The store's ledger head")
        newest = ledger_rows.last_seq(conn)
        if newest != stored.size or ledger_rows.event_hash(conn, stored.size) != stored.last_hash:
            raise IntegrityError(
                f"The store's ledger head names event {stored.size}, but the newest stored event "
                f"is {newest}: events were removed or added outside Caracal. Run "
                "`caracal ledger verify`."
            )
        problems = self.discrepancies(conn, stored, recorded)
        if problems:
            raise RollbackError(
                "The ledger was rolled back: "
                + problems[0].describe()
                + ". Nothing can use this workspace until an operator looks into it; "
                "`caracal ledger verify` says more, and `caracal ledger accept-rollback` "
                "continues from the store's ledger (and records that it did)."
            )
        self._trusted, self._tree = stored_row, None
        return stored

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
