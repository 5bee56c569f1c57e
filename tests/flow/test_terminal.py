"""The real `caracal flow --local` in a real terminal (tmux): onboarding to an issued mandate to
quit, then the CLI checks what Flow did."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.tmux import terminal, tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")


def test_onboarding_to_an_issued_mandate_in_a_real_terminal(home: Path) -> None:
    env = {
        "CARACAL_HOME": str(home),
        "CARACAL_KEYRING": "off",
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
    }
    with terminal([sys.executable, "-m", "caracal", "flow", "--local"], env) as term:
        term.wait_for("Step 1 of 3")
        term.type("demo")
        term.send("Enter")
        term.wait_for("Step 2 of 3")
        term.type("alice")
        term.send("Enter")
        term.wait_for("Step 3 of 3")
        for text in ("github", "https://api.github.com", "repos", "read"):
            term.type(text)
            term.send("Tab")
        term.send("Enter")  # the focus is on "Add provider"
        term.wait_for("Decisions per minute")
        # A subject with a policy, made with the CLI while Flow runs: Flow reads the shared store.
        assert run_cli("principal", "register", "--kind", "worker", "--name", "w1").code == 0
        assert (
            run_cli(
                "policy",
                "create",
                "--principal",
                "w1",
                "--max-validity",
                "1h",
                "--resource",
                "provider:github:resource:*",
                "--action",
                "provider:github:action:*",
            ).code
            == 0
        )
        term.send("6")
        term.wait_for("No mandates yet. Press i to issue one.")
        term.send("i")
        term.wait_for("Issue a mandate")
        term.send("Enter")  # open the issuer list (focused first)
        term.wait_for("alice (human)")
        term.send("Down", "Enter")
        term.send("Tab", "Enter")  # subject list
        term.wait_for("w1 (worker)")
        term.send("Down", "Down", "Enter")
        term.wait_for("valid at most 1h")
        # Resources: issues, repos; actions: comment, read, write (the catalog's order).
        term.send("Tab", "Down", "Space", "Tab", "Down", "Space")
        term.send("C-s")
        term.wait_for("1 mandate(s)")
        term.send("q")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "Caracal Flow" in term.screen():
            time.sleep(0.1)
        assert "Caracal Flow" not in term.screen(), term.screen()
    listed = run_cli("mandate", "list", "--subject", "w1", "--json")
    assert listed.code == 0, listed
    [mandate] = listed.json()
    assert mandate["status"] == "active"
    assert mandate["resources"] == ["provider:github:resource:repos"]
    assert mandate["actions"] == ["provider:github:action:read"]
    events = run_cli("ledger", "list", "--type", "mandate.issued", "--json").json()
    assert events[-1]["actor"].startswith("flow:")
