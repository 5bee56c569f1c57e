"""Authority changes announced to every runtime replica through Redis pub/sub.

The store stays the truth: a replica caches what validation reads only while it is subscribed,
and only for `CACHE_SECONDS`, so a lost announcement delays a revocation by at most that long,
and a replica without Redis reads the store on every decision."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

log = logging.getLogger(__name__)
CACHE_SECONDS = 0.5


def channel(workspace_id: str) -> str:
    return f"caracal:{workspace_id}:authority"


def redis_url(app: Caracal | None = None) -> str | None:
    configured = os.environ.get("CARACAL_REDIS_URL")
    if configured:
        return configured
    return app.config.runtime.redis_url if app is not None else None


def redis_password(url: str) -> str | None:
    """From CARACAL_REDIS_PASSWORD_FILE (a container secret), else from the URL."""
    path = os.environ.get("CARACAL_REDIS_PASSWORD_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return urlsplit(url).password


def publish(app: Caracal, kind: str, ids: list[str]) -> None:
    """Best effort, after the change has committed: replicas drop their cached view now
    instead of within CACHE_SECONDS."""
    url = redis_url(app)
    if not url:
        return
    try:
        import redis

        client = redis.Redis.from_url(
            url, password=redis_password(url), socket_timeout=0.5, socket_connect_timeout=0.5
        )
        try:
            client.publish(channel(app.workspace_id), json.dumps({"kind": kind, "ids": ids}))
        finally:
            client.close()
    except Exception as exc:  # the store is the truth; replicas catch up within CACHE_SECONDS
        log.warning("could not announce %s to Redis: %s", kind, exc)
