"""What a single command loads: its own command module and what its work needs, never the
front ends, servers and clients of the others (each costs start-up time on every call).
Checked in a fresh interpreter running the real command on a real workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.cli import run_cli

# Nothing a store-only command needs: UI, container engine, HTTP servers and clients, Redis,
# the PostgreSQL driver on an SQLite workspace, and the other front ends of Caracal.
NEVER = (
    "textual",
    "docker",
    "aiohttp",
    "uvicorn",
    "starlette",
    "httpx",
    "redis",
    "psycopg",
    "caracal.flow",
    "caracal.launcher",
    "caracal.server",
    "caracal.shell",
)
# Module counts measured when this budget was set, plus headroom for dependency updates;
# the count is what grows when a command starts importing something it does not use.
BUDGET = {"--help": 230, "principal list": 620, "mandate issue": 640}


def _loaded(home: Path, *argv: str) -> list[str]:
    code = textwrap.dedent(
        f"""
        import json, sys
        from caracal.cli.main import run
        code = run({list(argv)!r})
        print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CARACAL_HOME": str(home)},
        check=False,
    )
    exit_code, modules = json.loads(proc.stderr.strip().splitlines()[-1])
    assert exit_code == 0, proc.stderr
    return list(modules)


@pytest.fixture
def workspace(home: Path) -> Path:
    for argv in (
        ("workspace", "create", "demo"),
        (
            "provider",
            "add",
            "github",
            "--base-url",
            "https://api.github.com",
            "--resource",
            "repos",
            "--action",
            "repos:read",
        ),
        ("principal", "register", "--kind", "human", "--name", "alice"),
        ("principal", "register", "--kind", "worker", "--name", "bot"),
        (
            "policy",
            "create",
            "--principal",
            "bot",
            "--max-validity",
            "1h",
            "--resource",
            "provider:github:resource:*",
            "--action",
            "provider:github:action:*",
        ),
    ):
        assert run_cli(*argv).code == 0, argv
    return home


@pytest.mark.parametrize(
    ("label", "argv", "own"),
    [
        ("--help", ("--help",), None),
        ("principal list", ("principal", "list", "--json"), "caracal.cli.principal"),
        (
            "mandate issue",
            (
                "mandate",
                "issue",
                "--issuer",
                "alice",
                "--subject",
                "bot",
                "--ttl",
                "10m",
                "--resource",
                "provider:github:resource:repos",
                "--action",
                "provider:github:action:read",
            ),
            "caracal.cli.mandate",
        ),
    ],
)
def test_a_command_loads_only_what_it_uses(
    workspace: Path, label: str, argv: tuple[str, ...], own: str | None
) -> None:
    modules = _loaded(workspace, *argv)
    leaked = sorted(m for m in modules if m.split(".")[0] in NEVER or m.startswith(NEVER))
    assert leaked == [], f"`caracal {label}` imported {leaked}"
    commands = {m for m in modules if m.startswith("caracal.cli.")} - {
        "caracal.cli.common",
        "caracal.cli.entry",
        "caracal.cli.exit_codes",
        "caracal.cli.main",
        "caracal.cli.restricted",
    }
    if own is None:  # help on the root lists every command, so it loads them all
        assert "sqlalchemy" not in modules and "cryptography" not in modules
    else:
        assert commands == {own}, f"`caracal {label}` loaded other commands: {commands}"
    assert len(modules) <= BUDGET[label], (
        f"`caracal {label}` imports {len(modules)} modules (budget {BUDGET[label]})"
    )
