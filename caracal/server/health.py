"""Dependency checks behind `GET /health`: the store, and Redis when one is configured."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text

from caracal.services.facade import Caracal


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_store(app: Caracal) -> Check:
    try:
        with app.store.read() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("store", False, str(exc).strip().splitlines()[0][:200])
    return Check("store", True, app.location.describe())


def redis_password() -> str | None:
    path = os.environ.get("CARACAL_REDIS_PASSWORD_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return urlsplit(os.environ.get("CARACAL_REDIS_URL", "")).password


def check_redis(url: str | None, timeout: float = 1.0) -> Check | None:
    """AUTH (when a password is known) and PING over RESP; no client library needed."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        password = redis_password()
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
        return Check("redis", False, f"{parts.hostname}:{parts.port or 6379}: {exc}")
    if replies[-1] != b"+PONG" or (password and replies[0] != b"+OK"):
        return Check("redis", False, replies[0].decode(errors="replace")[:200])
    return Check("redis", True, f"{parts.hostname}:{parts.port or 6379}")


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
