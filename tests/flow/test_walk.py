"""An operator's whole day in a real terminal (tmux), keys only: onboarding with a provider,
principals, policies, issue, validate, delegate, revoke, ledger verify, a locked backup, a
restore into a new workspace and a switch to it; then the CLI checks what Flow stored."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from caracal.services.backup.archive_check import verify_archive
from tests.support.cli import run_cli
from tests.support.tmux import Terminal, terminal, tmux_available

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")

LOCK_KEY = "walk lock key 42"
PATIENCE = 90.0  # seconds: CI machines are slow and loaded; every wait polls the screen


def wait(term: Terminal, text: str) -> str:
    return term.wait_for(text, timeout=PATIENCE)


def gone(term: Terminal, text: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if text not in term.screen():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never went away; the screen shows:\n{term.screen()}")


def choose(term: Terminal, option: str, downs: int, listed: str) -> None:
    """Open the focused dropdown, move to an option, take it. `listed` is a line shown only
    while the list is open (the form may scroll the dropdown itself out of view)."""
    term.send("Enter")
    wait(term, option)
    wait(term, listed)
    term.send(*["Down"] * downs, "Enter")
    gone(term, listed)  # closed again
    time.sleep(0.5)  # a person's pause before the next field (see Terminal.PACE)


def register(term: Terminal, name: str, downs: int) -> None:
    term.send("n")
    wait(term, "Register a principal")
    choose(
        term, "orchestrator", downs, "orchestrator"
    )  # kinds: human, orchestrator, worker, service
    term.send("Tab")
    term.type(name)
    wait(term, f"▊  {name} ")
    term.send("C-s")
    gone(term, "Register a principal")
    wait(term, f" {name} ")


def policy(term: Terminal, who: str, downs: int, depth: str) -> None:
    term.send("n")
    wait(term, "Create a policy")
    choose(term, f"{who} (worker)", downs, "alice (human)")  # first: shows the keys arrive
    # The first choice of each list is the provider's wildcard.
    term.send("Tab", "Space", "Tab", "Space", "Tab", "Tab")
    term.type(depth)  # replaces the "0" the field starts with
    term.send("C-s")
    gone(term, "Create a policy")


def test_a_whole_day_with_keys_only(home: Path, tmp_path: Path) -> None:
    env = {
        "CARACAL_HOME": str(home),
        "CARACAL_KEYRING": "off",
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
    }
    with terminal([sys.executable, "-m", "caracal", "flow", "--local"], env) as term:
        # Onboarding: a workspace, you, a provider.
        wait(term, "Step 1 of 3")
        term.type("demo")
        term.send("Enter")
        wait(term, "Step 2 of 3")
        term.type("alice")
        term.send("Enter")
        wait(term, "Step 3 of 3")
        for text in ("github", "https://api.github.com", "repos", "read"):
            term.type(text)
            term.send("Tab")
        term.send("Enter")  # the focus is on "Add provider"
        wait(term, "Decisions per minute")
        term.send("3")
        wait(term, "api.github.com")

        # Principals: two workers (w1 receives from alice, w2 from w1).
        term.send("4")
        wait(term, "alice")
        register(term, "w1", 2)
        register(term, "w2", 2)

        # Policies: w1 may delegate once, w2 not at all.
        term.send("5")
        wait(term, "Policies")
        policy(term, "w1", 2, "1")
        wait(term, "1 polic")
        policy(term, "w2", 3, "0")
        wait(term, "2 polic")

        # Issue alice -> w1.
        term.send("6")
        wait(term, "No mandates yet. Press i to issue one.")
        term.send("i")
        wait(term, "Issue a mandate")
        choose(term, "alice (human)", 1, "w2 (worker)")
        term.send("Tab")
        choose(term, "w1 (worker)", 2, "w2 (worker)")
        wait(term, "valid at most 1h, delegation depth at most 1")  # w1's policy, loaded
        term.send("Tab", "Space", "Tab", "Space", "Tab", "Tab")
        term.type("1")  # delegation depth
        term.send("C-s")
        wait(term, "1 mandate(s)")

        # Validate it: allowed; the dialog stays to try again, esc closes it.
        term.send("v")
        wait(term, "Validate a mandate")
        # At 80×24 the fields scroll; the answer shows under them, in view.
        term.send("C-s")
        wait(term, "ALLOWED")
        term.send("Escape")
        gone(term, "Validate a mandate")

        # Delegate w1 -> w2 (depth: the source's minus one).
        term.send("d")
        wait(term, "Delegate a mandate")
        # Only w2 is offered (alice, a human, is listed under "Not offered" with the reason).
        wait(term, "Not offered")
        choose(term, "w2 (worker)", 1, "choose the subject")
        term.send("C-s")
        wait(term, "2 mandate(s)")

        # Revoke the root (the oldest, last row): its delegation goes with it.
        term.send("G", "x")
        wait(term, "2 mandate(s) will be revoked")
        term.type("end of the day")
        term.send("C-s")
        gone(term, "will be revoked")

        # Ledger: verify the whole chain.
        term.send("8")
        wait(term, "Ledger")
        term.send("v")
        wait(term, "Intact")

        # Backup, locked so it keeps the keys.
        term.send("9")
        wait(term, "No backups yet")
        term.send("n")
        wait(term, "Create a backup")
        term.type(LOCK_KEY)
        wait(term, "•" * len(LOCK_KEY))
        term.send("Tab")
        term.type(LOCK_KEY)
        term.send("C-s")
        wait(term, ".locked")

        # Restore it into demo-restored; say no to the offered switch, then switch by hand.
        term.send("r")
        wait(term, "Restore into a new workspace")
        wait(term, "demo-restored")  # the suggested name
        term.send("Tab")
        term.type(LOCK_KEY)
        term.send("C-s")
        wait(term, "Switch to it now?")
        term.send("n")
        gone(term, "Switch to it now?")
        term.send("2")
        wait(term, "demo-restored")
        term.send("j", "u")
        wait(term, "Switched to workspace demo-restored")
        term.send("q")
        gone(term, "Caracal Flow")

    def cli(*args: str) -> Any:
        result = run_cli(*args, "--json")
        assert result.code == 0, result
        return result.json()

    workspaces = {w["name"]: w for w in cli("workspace", "list")}
    assert set(workspaces) == {"demo", "demo-restored"}
    assert workspaces["demo-restored"]["active"]
    [archive] = (home / "workspaces" / "demo" / "backups").glob("demo-*.tar.gz.locked")
    report = verify_archive(archive, LOCK_KEY)
    assert report.ok and report.secrets_included  # the keys went into the backup
    for name in ("demo", "demo-restored"):  # the restored workspace holds the same day
        [provider] = cli("-w", name, "provider", "list")
        assert provider["name"] == "github"
        names = {p["id"]: p["name"] for p in cli("-w", name, "principal", "list")}
        assert sorted(names.values()) == ["alice", "w1", "w2"]
        depths = {
            names[p["principal_id"]]: p["delegation_depth"]
            for p in cli("-w", name, "policy", "list")
        }
        assert depths == {"w1": 1, "w2": 0}
        mandates = cli("-w", name, "mandate", "list")
        assert {(names[m["issuer_id"]], names[m["subject_id"]]) for m in mandates} == {
            ("alice", "w1"),
            ("w1", "w2"),
        }
        assert all(m["status"] == "revoked" for m in mandates)
