"""Dependency checks behind `GET /health`: the store, and Redis when one is configured.

`/health` answers anyone who can reach the runtime, so a detail says whether a dependency
works and, if not, what kind of failure it is: never a URL, a host, a port or a secret (the
workspace log has the rest)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from caracal.services import change_feed
from caracal.services.facade import Caracal

log = logging.getLogger("caracal.server")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_store(app: Caracal) -> Check:
    """What a decision needs from the store: its tables and the ledger head, readable."""
    try:
        app.store.check_decision_tables()
    except Exception as exc:
        return Check("store", False, failure("store", exc))
    return Check("store", True, app.location.describe())


def check_ledger_writer(alive: bool, pending: int) -> Check:
    if not alive:
        return Check("ledger_writer", False, "stopped: no decision can be recorded")
    return Check("ledger_writer", True, f"running ({pending} decision(s) waiting)")


def failure(name: str, exc: BaseException) -> str:
    """A detail safe to show anyone: the kind of failure only (logged in full)."""
    log.warning("health: %s failed: %s", name, exc)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "unreachable (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if isinstance(exc, OSError):
        return "unreachable"
    return f"failing ({type(exc).__name__})"


def redis_password(url: str) -> str | None:
    """As the change feed has it: the password file, else the URL's own (config.yaml's
    `runtime.redis_url` or CARACAL_REDIS_URL)."""
    return change_feed.redis_password(url)


def check_redis(url: str | None, timeout: float = 1.0) -> Check | None:
    """AUTH (when a password is known) and PING over RESP; no client library needed."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        password = redis_password(url)
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout
        ) as sock:
            stream = sock.makefile("rwb")
            if password:
                stream.write(_resp("AUTH", password))
            stream.write(_resp("PING"))
            stream.flush()
            replies = [stream.readline().strip() for _ in range(2 if password else 1)]
    except (OSError, ValueError) as exc:
        return Check("redis", False, failure("redis", exc))
    if replies[-1] != b"+PONG" or (password and replies[0] != b"+OK"):
        log.warning("health: redis answered %r", replies[0][:200])
        refused = replies[0].startswith((b"-NOAUTH", b"-WRONGPASS", b"-ERR invalid password"))
        return Check("redis", False, "authentication refused" if refused else "unexpected answer")
    return Check("redis", True, "reachable")


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
