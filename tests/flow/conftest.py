"""Flow tests drive the real app through Pilot, on a real workspace, and then check the store.

`settle` waits for the app's workers (store calls run in threads) instead of sleeping; `until`
waits for a condition a user would see."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caracal.flow.app import FlowApp, build_app
from tests.support.cli import run_cli

SIZE = (140, 42)


def ok(*args: str, input: str = "") -> Any:
    result = run_cli(*args, input=input)
    assert result.code == 0, result
    return result


def mark_onboarded(name: str = "demo") -> None:
    from caracal.home.flow_state import read_state, write_state
    from caracal.home.paths import HomePaths

    path = HomePaths.from_env().workspace(name).flow_state
    state = read_state(path)
    state["onboarding"] = {"done": True, "step": None}
    write_state(path, state)


def populated(name: str = "demo") -> dict[str, str]:
    """A workspace with a scoped provider, a principal of each kind, policies and mandates."""
    ok("workspace", "create", name)
    ok(
        "provider",
        "add",
        "github",
        "--base-url",
        "https://api.github.com",
        "--resource",
        "repos=Repositories",
        "--resource",
        "issues",
        "--action",
        "repos:read:GET:/repos",
        "--action",
        "repos:write:POST:/repos",
        "--action",
        "issues:comment",
    )
    ids = {}
    for kind, who in [
        ("human", "alice"),
        ("orchestrator", "orch"),
        ("worker", "w1"),
        ("service", "svc"),
    ]:
        ids[who] = ok("principal", "register", "--kind", kind, "--name", who).stdout.strip()
    for who in ("orch", "w1", "svc"):
        ok(
            "policy",
            "create",
            "--principal",
            who,
            "--max-validity",
            "1h",
            "--delegation-depth",
            "2",
            "--resource",
            "provider:github:resource:*",
            "--action",
            "provider:github:action:*",
        )
    ids["root"] = ok(
        "mandate",
        "issue",
        "--issuer",
        "alice",
        "--subject",
        "orch",
        "--ttl",
        "30m",
        "--delegation-depth",
        "2",
        "--resource",
        "provider:github:resource:repos",
        "--action",
        "provider:github:action:read",
        "--action",
        "provider:github:action:write",
    ).stdout.strip()
    mark_onboarded(name)
    return ids


@pytest.fixture
def world(home: Path) -> dict[str, str]:
    return populated()


@pytest.fixture
def app_factory() -> Callable[..., FlowApp]:
    return build_app


async def settle(pilot: Any, rounds: int = 3) -> None:
    """Let queued work finish: workers (threads), then the messages they posted."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def until(
    pilot: Any, condition: Callable[[], bool], timeout: float = 10.0, what: str = ""
) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the widget may not be mounted yet
            if condition():
                return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def screen_name(app: FlowApp) -> str:
    return type(app.screen).__name__


async def discard_form(pilot: Any, back_to: str) -> None:
    """esc on a form with edits asks first: say yes, and wait for the screen behind it."""
    app = pilot.app
    await pilot.press("escape")
    await until(pilot, lambda: screen_name(app) in ("ConfirmModal", back_to), what="esc")
    if screen_name(app) == "ConfirmModal":
        await pilot.press("y")
    await until(pilot, lambda: screen_name(app) == back_to, what=back_to)
