"""`caracal serve --workers 2`: /metrics answers for the whole service, whichever worker
takes the scrape."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.test_authorize import READ, REPOS, WRITE, make_workspace
from tests.support.runtime import Server, serve


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} missing from /metrics:\n{text}"
    return float(found.group(1))


def _shared_folder(server: Server) -> Path:
    """The folder the workers share their figures in (named in the workers' environment)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert children, "caracal serve --workers 2 started no worker"
    environ = Path(f"/proc/{children[0]}/environ").read_bytes().split(b"\0")
    found = [e for e in environ if e.startswith(b"CARACAL_METRICS_DIR=")]
    assert found, "the workers were given no folder to share their figures in"
    return Path(found[0].split(b"=", 1)[1].decode())


def _per_worker(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("worker-*.json"))]


def test_metrics_sum_every_worker(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARACAL_REDIS_URL", raising=False)
    token = make_workspace("demo")
    with serve(workers=2) as server:
        folder = _shared_folder(server)
        allowed = 0
        # Each request on a new connection, until both workers have decided some.
        while True:
            assert server.authorize(token=token, action=READ, resource=REPOS).status == 200
            allowed += 1
            time.sleep(0.01)
            workers = _per_worker(folder)
            if len(workers) == 2 and all(w["decisions"].get("ALLOWED") for w in workers):
                break
            assert allowed < 500, "the requests never reached both workers"
        for _ in range(7):
            assert server.authorize(token=token, action=WRITE, resource=REPOS).status == 403
        server.request("POST", "/v1/authorize", b"{", {})
        # Whichever worker answers, the figures are the whole service's (the other worker's
        # at most half a second old).
        time.sleep(1.0)
        for _ in range(6):
            text = server.request("GET", "/metrics").body.decode()
            assert _metric(text, 'caracal_decisions_total{reason_code="ALLOWED"}') == allowed
            assert _metric(text, 'caracal_decisions_total{reason_code="ACTION_OUT_OF_SCOPE"}') == 7
            assert _metric(text, 'caracal_requests_rejected_total{status="400"}') == 1
            assert _metric(text, 'caracal_decision_seconds_bucket{le="+Inf"}') == allowed + 7
            assert _metric(text, "caracal_ledger_lag_events") == 0
            assert _metric(text, "caracal_workers") == 2
    assert not folder.exists(), "the shared folder outlived the service"
