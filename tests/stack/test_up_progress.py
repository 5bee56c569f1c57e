"""`caracal up` at a real terminal on a real engine: a progress line that moves while the
services start and become healthy, gone when the status table prints; none with `--json`.
A stack of its own (PostgreSQL and Redis from the offline images), removed at the end."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.stack.conftest import OFFLINE, ROOT, StackEnv, _free_port, require_engine
from tests.support.tmux import Terminal, terminal

pytestmark = pytest.mark.docker

DISPLAY_MARKS = ("to be healthy", "waited ", "network and volumes", "starting postgres")


@pytest.fixture
def small_stack(tmp_path: Path) -> Iterator[StackEnv]:
    """PostgreSQL and Redis only: the health waits without building the runtime image."""
    require_engine()
    project = f"caracal-upprog-{uuid.uuid4().hex[:8]}"
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    spec["services"] = {k: v for k, v in spec["services"].items() if k in ("postgres", "redis")}
    spec["secrets"] = {
        k: v for k, v in spec["secrets"].items() if k in ("postgres_password", "redis_password")
    }
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(yaml.safe_dump(spec, sort_keys=False))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.update({k: os.environ.get(k, v) for k, v in OFFLINE.items()})
    env.update(
        CARACAL_HOME=str(home),
        CARACAL_KEYRING="off",
        CARACAL_PROJECT_NAME=project,
        CARACAL_DOCKER_COMPOSE_FILE=str(compose),
    )
    handle = StackEnv(project, home, 0, env)
    try:
        yield handle
    finally:
        handle.run("purge", "--force", timeout=300)
        shutil.rmtree(home, ignore_errors=True)
        for kind in ("container", "volume", "network"):
            assert handle.labelled(kind) == [], f"{kind}s of {project} were left behind"


SEEN_AT: dict[str, float] = {}  # when each screen was first seen (monotonic seconds)


def _up_in_terminal(stack: StackEnv, out: Path, *flags: str) -> tuple[list[str], str]:
    """Run `caracal up` with stderr on a tmux terminal and stdout in `out`; every distinct
    screen seen until it ended (first seen at SEEN_AT[screen]), and the last one."""
    command = f"{shlex.join([sys.executable, '-m', 'caracal', 'up', *flags])} > {out}; echo EXIT=$?"
    screens: list[str] = []
    SEEN_AT.clear()
    with terminal(["sh", "-c", command], stack.env, width=140, height=30) as term:
        deadline = time.monotonic() + 300
        last = ""
        while time.monotonic() < deadline:
            shown = _screen(term)
            if shown != last:
                screens.append(shown)
                SEEN_AT.setdefault(shown, time.monotonic())
                last = shown
            if "EXIT=" in shown:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"`caracal up` did not finish; the screen shows:\n{last}")
    return screens, last


def _screen(term: Terminal) -> str:
    return "\n".join(line.rstrip() for line in term.screen().splitlines()).strip()


def _display_lines(screen: str) -> list[str]:
    return [line for line in screen.splitlines() if any(m in line for m in DISPLAY_MARKS)]


def _without_spinner(screen: str) -> list[str]:
    """The display's lines without the spinner and the elapsed clock, which move by
    themselves."""
    return [re.sub(r"^\W+|\s+\d+:\d\d:\d\d$", "", line) for line in _display_lines(screen)]


def test_up_shows_moving_progress_at_a_terminal_and_none_with_json(
    small_stack: StackEnv, tmp_path: Path
) -> None:
    # --json: stderr is the terminal, yet no display ever appears; stdout is the JSON alone.
    screens, last = _up_in_terminal(small_stack, tmp_path / "up.json", "--json")
    assert last == "EXIT=0", last  # stderr (the terminal) got nothing at all
    assert not [s for s in screens if "waited " in s or "to be healthy" in s], screens
    statuses = json.loads((tmp_path / "up.json").read_text())
    assert {s["service"]: s["health"] for s in statuses} == {
        "postgres": "healthy",
        "redis": "healthy",
    }

    # From nothing again (volumes too, so PostgreSQL initialises and takes a few seconds).
    small_stack.run("reset", "--yes", check=True, timeout=120)
    screens, last = _up_in_terminal(small_stack, tmp_path / "up.txt")
    assert "EXIT=0" in last, last
    # The spinner turns on its own; what counts is the phase and the time waited moving.
    frames = [tuple(_without_spinner(s)) for s in screens if _display_lines(s)]
    distinct = list(dict.fromkeys(frames))
    waits = [line for frame in distinct for line in frame if "waited " in line]
    waited = {re.search(r"waited (\d+)s of 180s", line)[1] for line in waits}  # type: ignore[index]
    # The display moved at least twice: three different states before the end.
    assert len(distinct) >= 3 and waited, distinct
    # The time waited counts up while the wait lasts (a wait shorter than two seconds, on a
    # fast machine, shows one figure).
    waiting = [SEEN_AT[s] for s in screens if "waited " in s]
    if waiting[-1] - waiting[0] >= 2.5:
        assert len(waited) >= 2, distinct
    assert all(re.search(r"waiting for (postgres|redis) to be healthy", w) for w in waits), waits
    # The display is gone when the command ends; the table went to stdout.
    assert "waited " not in last, last
    table = (tmp_path / "up.txt").read_text()
    assert "postgres" in table and "healthy" in table, table


@pytest.fixture
def full_stack(tmp_path: Path) -> Iterator[StackEnv]:
    """The stack file Caracal ships, with a runtime image of this test's own to build."""
    require_engine()
    project = f"caracal-upbuild-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.update({k: os.environ.get(k, v) for k, v in OFFLINE.items()})
    env.update(
        CARACAL_HOME=str(home),
        CARACAL_KEYRING="off",
        CARACAL_PROJECT_NAME=project,
        CARACAL_RUNTIME_PORT=str(_free_port()),
        CARACAL_RUNTIME_IMAGE=f"caracal-e2e/runtime:{project}",
        CARACAL_DOCKER_COMPOSE_FILE=str(ROOT / "docker-compose.yml"),
    )
    handle = StackEnv(project, home, 0, env)
    try:
        yield handle
    finally:
        handle.run("purge", "--force", timeout=300)
        shutil.rmtree(home, ignore_errors=True)
        for kind in ("container", "volume", "network", "image"):
            assert handle.labelled(kind) == [], f"{kind}s of {project} were left behind"


def test_up_shows_the_image_builds_steps(full_stack: StackEnv, tmp_path: Path) -> None:
    screens, last = _up_in_terminal(full_stack, tmp_path / "up.txt", "--build")
    assert "EXIT=0" in last, last
    steps = {
        m[1]
        for screen in screens
        for m in re.finditer(r"building caracal-e2e/runtime:\S+ .*step (\d+)/\d+: ", screen)
    }
    # The build's step moved at least twice on the one line, then the display went away.
    assert len(steps) >= 3, screens[-20:]
    assert "step " not in last, last
