"""Copies of the latest signed tree head kept outside the store: the workspace's head file and
the witnesses named in `config.yaml`.

Someone who can write the database but not the workspace folder (or a witness) can roll the
store back to an older, validly signed state; they cannot make these copies forget the newer
head. Each copy only ever moves forward: a head is written over a smaller one, never over a
larger one or over a different tree of the same size (that is the evidence of a fork).

The head file is written after commits at most once a second (always at close); witnesses are
fed from a background thread, so a slow witness never holds up a decision.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.tree_head import HeadFormatError, TreeHead
from caracal.home.atomic import atomic_write_text

log = logging.getLogger(__name__)
HEAD_FILE = "ledger-head.json"
_MAX_HEAD_BYTES = 4096


class Witness(Protocol):
    name: str

    def read(self) -> TreeHead | None:
        """The head this witness holds (None: none yet, or it cannot be read back)."""

    def offer(self, head: TreeHead) -> None:
        """Keep `head` if it is newer than what the witness holds."""

    def force(self, head: TreeHead) -> None:
        """Keep `head` whatever the witness holds (an operator accepted a rollback)."""


def parse_head(data: bytes, where: str) -> TreeHead:
    if len(data) > _MAX_HEAD_BYTES:
        raise HeadFormatError(f"{where} is too large to be a tree head")
    try:
        return TreeHead.from_dict(strict_loads(data))
    except StrictJSONError as exc:
        raise HeadFormatError(f"{where} is not JSON: {exc}") from None
    except HeadFormatError as exc:
        raise HeadFormatError(f"{where}: {exc}") from None


def head_document(head: TreeHead) -> str:
    return (
        json.dumps(
            {**head.to_dict(), "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")},
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


def _newer(head: TreeHead, held: TreeHead | None) -> bool:
    """Whether `head` may replace `held`: a larger tree, or the first one."""
    return held is None or head.size > held.size


class PathWitness:
    """A head kept in a file: the workspace's own `keys/ledger-head.json`, or a witness path
    (another disk, a mounted share)."""

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.name = name or f"file {path}"

    def read(self) -> TreeHead | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return parse_head(data, str(self.path))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = open(lock, "a")  # noqa: SIM115 - held for the block
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fd.close()

    def offer(self, head: TreeHead) -> None:
        with self._locked():
            try:
                held = self.read()
            except HeadFormatError:
                held = None  # damaged: the check at open reports it; a good head replaces it
            if _newer(head, held):
                atomic_write_text(self.path, head_document(head), mode=0o600)

    def force(self, head: TreeHead) -> None:
        with self._locked():
            atomic_write_text(self.path, head_document(head), mode=0o600)


# Replace the stored head only with a larger tree (KEYS[1]; ARGV: size, document).
_REDIS_OFFER = """
local held = redis.call('GET', KEYS[1])
if held then
  local ok, doc = pcall(cjson.decode, held)
  if ok and type(doc) == 'table' and tonumber(doc['size']) and tonumber(doc['size']) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class RedisWitness:
    def __init__(self, url: str, key: str, timeout: float) -> None:
        self.url = url
        self.key = key
        self.timeout = timeout
        self.name = f"redis key {key}"
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self._client

    def read(self) -> TreeHead | None:
        data = self._redis().get(self.key)
        return None if data is None else parse_head(bytes(data), self.name)

    def offer(self, head: TreeHead) -> None:
        self._redis().eval(_REDIS_OFFER, 1, self.key, head.size, head_document(head))

    def force(self, head: TreeHead) -> None:
        self._redis().set(self.key, head_document(head))


class HttpWitness:
    """An endpoint that receives every head (POST, JSON). It cannot be read back: an auditor
    holding it checks the store with `caracal ledger verify --since`."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.name = f"http {url.split('?', maxsplit=1)[0]}"

    def read(self) -> TreeHead | None:
        return None

    def offer(self, head: TreeHead) -> None:
        import urllib.request  # only where an HTTP witness is configured: HTTP costs imports

        request = urllib.request.Request(  # noqa: S310 - the operator's configured witness
            self.url,
            data=head_document(head).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
            reply.read(1024)

    force = offer


@dataclass
class WitnessStatus:
    name: str
    size: int | None = None  # the newest head it accepted from this process
    at: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "at": self.at, "error": self.error}


class HeadPublisher:
    """Feeds the head file (at most every `interval` seconds, and at close) and the witnesses
    (from a background thread) with the newest committed head."""

    def __init__(
        self, head_file: PathWitness, witnesses: list[Witness], interval: float = 1.0
    ) -> None:
        self.head_file = head_file
        self.witnesses = witnesses
        self.interval = interval
        self.status = {w.name: WitnessStatus(w.name) for w in [head_file, *witnesses]}
        self._pending: TreeHead | None = None
        self._sent_at = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def publish(self, head: TreeHead) -> None:
        """A head was committed. Cheap: the writing happens on the publisher's thread."""
        with self._lock:
            if self._pending is None or head.size > self._pending.size:
                self._pending = head
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="caracal-head-publisher", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def flush(self) -> None:
        """Write what is pending now, on this thread."""
        with self._lock:
            head, self._pending = self._pending, None
        if head is not None:
            self._send(head)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def force(self, head: TreeHead) -> None:
        """Record `head` everywhere even if a copy holds a larger one (after an operator
        accepted a rollback); failures are raised."""
        for target in (self.head_file, *self.witnesses):
            target.force(head)
            self._mark(target.name, head, None)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            wait = self._sent_at + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.flush()

    def _send(self, head: TreeHead) -> None:
        self._sent_at = time.monotonic()
        for target in (self.head_file, *self.witnesses):
            try:
                target.offer(head)
            except Exception as exc:  # a witness failing must never fail a decision
                log.warning("could not record the ledger head at %s: %s", target.name, exc)
                self._mark(target.name, None, f"{type(exc).__name__}: {exc}")
            else:
                self._mark(target.name, head, None)

    def _mark(self, name: str, head: TreeHead | None, error: str | None) -> None:
        status = self.status.setdefault(name, WitnessStatus(name))
        status.error = error
        if head is not None:
            status.size, status.at = head.size, time.time()

    def recorded(self) -> list[tuple[str, TreeHead | None, str | None]]:
        """Every copy's head as it holds it now: (name, head, problem reading it)."""
        out: list[tuple[str, TreeHead | None, str | None]] = []
        for target in (self.head_file, *self.witnesses):
            try:
                out.append((target.name, target.read(), None))
            except HeadFormatError as exc:
                out.append((target.name, None, str(exc)))
            except OSError as exc:  # urllib's URLError among them
                out.append((target.name, None, f"unreachable: {exc}"))
            except Exception as exc:  # redis errors and the like
                out.append((target.name, None, f"unreachable: {type(exc).__name__}: {exc}"))
        return out
