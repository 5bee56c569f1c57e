"""The docs' worked example is what `caracal plan` prints."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.declarative.conftest import cli, ok, write
from tests.support.cli import run_cli

PAGE = Path(__file__).resolve().parents[2] / "docs" / "authority-as-code.md"


def test_the_documented_plan_is_what_plan_prints(home: Path, tmp_path: Path) -> None:
    section = PAGE.read_text()
    shown = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert shown is not None
    ok(run_cli("workspace", "create", "demo"))
    ok(
        cli(
            "demo",
            "provider",
            "add",
            "docs",
            "--base-url",
            "https://docs.example.com",
            "--resource",
            "pages",
            "--action",
            "pages:read",
            "--action",
            "pages:write",
        )
    )
    ok(cli("demo", "principal", "register", "--kind", "human", "--name", "alice"))
    ok(cli("demo", "principal", "register", "--kind", "worker", "--name", "w1"))
    ok(
        cli(
            "demo",
            "policy",
            "create",
            "--principal",
            "w1",
            "--max-validity",
            "1h",
            "--resource",
            "provider:docs:resource:*",
            "--action",
            "provider:docs:action:read",
        )
    )
    state = yaml.safe_load(ok(cli("demo", "export")).stdout)
    state["policies"][0]["actions"].append("provider:docs:action:write")
    state["principals"] = [p for p in state["principals"] if p["name"] != "alice"]
    path = write(tmp_path / "state.yaml", yaml.safe_dump(state, sort_keys=False))
    assert ok(cli("demo", "plan", "-f", str(path))).stdout == shown.group(1)
