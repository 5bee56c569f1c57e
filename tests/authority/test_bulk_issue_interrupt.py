"""ctrl+c during `caracal mandate issue --from FILE` at a real terminal: exit 130, one line,
and every mandate in the store is one whose id was printed (a chunk is issued whole or not at
all); the ledger still verifies."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from caracal.services.facade import Caracal
from tests.authority.conftest import READ, REPOS, World
from tests.support.long_run import caracal_argv, watch_command
from tests.support.tmux import tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")

LINES = 40_000


def test_ctrl_c_mid_bulk_issuance_keeps_whole_chunks(
    world: World, home: Path, tmp_path: Path
) -> None:
    with Caracal.open("demo") as app:
        before = len(app.mandates.listing())
    line = json.dumps(
        {
            "issuer": "alice",
            "subject": "orch",
            "resources": [REPOS],
            "actions": [READ],
            "ttl": "30m",
        }
    )
    source, ids = tmp_path / "many.jsonl", tmp_path / "ids.txt"
    source.write_text((line + "\n") * LINES)
    # The ids go to a file: with stdout at the terminal, they would be the progress.
    run = shlex.join(caracal_argv("mandate", "issue", "--from", str(source)))
    seen = watch_command(home, f"{run} > {shlex.quote(str(ids))}", interrupt_after=2)
    assert seen.code == 130, seen.final
    stops = [s for s in seen.final.splitlines() if s.startswith("interrupted: ")]
    assert len(stops) == 1 and "none was half issued" in stops[0], seen.final
    printed = ids.read_text().split()
    assert 0 < len(printed) < LINES
    with Caracal.open("demo") as app:
        issued = {m["id"] for m in app.mandates.listing()}
        assert app.ledger.verify().ok
    assert len(issued) - before == len(printed) and set(printed) <= issued


def test_a_driver_failing_after_ctrl_c_is_still_an_interruption(
    world: World, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ctrl+c lands in the middle of a database call and the driver's clean-up then fails
    ("another command is already in progress", seen on PostgreSQL under load): the command
    still ends as interrupted (130, the one line), not as a store error."""
    from sqlalchemy.exc import OperationalError

    from caracal.store.engine import Store
    from tests.support.cli import run_cli

    real_write, calls = Store.write, []

    def write(self: Store, work: Any) -> Any:
        calls.append(1)
        if len(calls) < 3:
            return real_write(self, work)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OperationalError(
                "ROLLBACK", {}, Exception("another command is already in progress")
            ) from None

    source = tmp_path / "few.jsonl"
    line = json.dumps({"issuer": "alice", "subject": "orch", "resources": [REPOS],
                       "actions": [READ], "ttl": "30m"})  # fmt: skip
    source.write_text((line + "\n") * 2500)  # three chunks
    monkeypatch.setattr(Store, "write", write)
    done = run_cli("mandate", "issue", "--from", str(source))
    monkeypatch.undo()
    assert done.code == 130, done
    stops = [s for s in done.stderr.splitlines() if s.startswith("interrupted: ")]
    assert len(stops) == 1 and "none was half issued" in stops[0], done
    assert "error" not in done.stderr.lower(), done
