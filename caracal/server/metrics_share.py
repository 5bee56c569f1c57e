"""/metrics for the whole service when `caracal serve --workers N` runs several processes.

The parent makes a folder and names it in `CARACAL_METRICS_DIR`. Each worker writes its
figures there (`worker-<pid>.json`, replaced atomically) every `INTERVAL` seconds and when it
stops; the worker that answers /metrics writes its own first, then merges every file (see
`metrics.merge`): counters of every worker that ever served, gauges of the live ones. The
other workers' figures are at most `INTERVAL` old. The folder is removed when the service
stops."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from caracal.server.metrics import merge

ENV = "CARACAL_METRICS_DIR"
INTERVAL = 0.5

log = logging.getLogger("caracal.server")


@contextlib.contextmanager
def shared_folder(workers: int) -> Iterator[None]:
    """In the parent of `workers` processes: the folder they share, for as long as they run."""
    if workers <= 1:
        yield
        return
    folder = tempfile.mkdtemp(prefix="caracal-metrics-")
    previous = os.environ.get(ENV)
    os.environ[ENV] = folder
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


class MetricsShare:
    """One worker's side of the shared folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid = os.getpid()
        self.path = folder / f"worker-{self.pid}.json"

    @classmethod
    def from_env(cls) -> MetricsShare | None:
        folder = os.environ.get(ENV)
        if not folder or not Path(folder).is_dir():
            return None
        return cls(Path(folder))

    def write(self, snapshot: dict[str, Any]) -> None:
        temporary = self.path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(snapshot, separators=(",", ":")))
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("could not share this worker's metrics: %s", exc)

    def merged(self, own: dict[str, Any]) -> dict[str, Any]:
        """The whole service's figures, this worker's own as of now."""
        self.write(own)
        snapshots: list[dict[str, Any]] = []
        live: list[bool] = []
        for path in sorted(self.folder.glob("worker-*.json")):
            try:
                pid = int(path.stem.removeprefix("worker-"))
                snapshot = own if pid == self.pid else json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced, or not one of ours
            snapshots.append(snapshot)
            live.append(_alive(pid))
        return merge(snapshots, live)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
