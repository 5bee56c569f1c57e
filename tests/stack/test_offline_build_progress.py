"""The offline image build tells a person at a terminal where it is (image i of n, phase, time
so far); run without a terminal, as CI runs it, its output is what it always was. Run here on
images that already exist, so nothing is rebuilt."""

from __future__ import annotations

import os
import subprocess
import time

from tests.stack.conftest import OFFLINE, ROOT, require_engine
from tests.support.tmux import terminal

SCRIPT = ROOT / "containers" / "offline" / "build-images.sh"


def test_phase_lines_at_a_terminal_and_unchanged_output_without_one() -> None:
    require_engine()
    base, postgres = OFFLINE["CARACAL_BASE_IMAGE"], OFFLINE["CARACAL_POSTGRES_IMAGE"]
    quiet = subprocess.run(
        ["bash", str(SCRIPT), "base", "postgres"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "[1/2]" not in quiet.stdout + quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout.startswith(
        f"build-images: {base} exists; keeping it (use --force to rebuild).\n"
        f"build-images: {postgres} exists; keeping it (use --force to rebuild).\n"
    ), quiet.stdout

    with terminal(["bash", str(SCRIPT), "base", "postgres"], dict(os.environ)) as term:
        shown = term.wait_for("export CARACAL_BASE_IMAGE", timeout=120)
        time.sleep(0.2)
        shown = term.screen()
    assert f"build-images: [1/2] {base}: kept" in shown, shown
    assert f"build-images: [2/2] {postgres}: kept" in shown, shown
