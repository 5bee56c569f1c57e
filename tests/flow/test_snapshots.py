"""A snapshot of every screen and dialog at a fixed size, on a workspace built the same way
every run: frozen time, counter-based ids, and a home folder of the run's own that Flow shows
as `~/.caracal` (so the pictures do not depend on where it is). Review changes with
`pytest tests/flow/test_snapshots.py --snapshot-update` and look at the SVGs."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec

from caracal.core import keys
from caracal.flow.app import build_app
from caracal.services import ledger_keys, signing
from tests.flow.conftest import populated, screen_name, settle, until

FROZEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SIZE = (130, 40)


@pytest.fixture
def fixed_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CARACAL_HOME", str(tmp_path / ".caracal"))
    monkeypatch.setenv("CARACAL_KEYRING", "off")
    for var in (
        "CARACAL_WORKSPACE",
        "CARACAL_STORE_URL",
        "CARACAL_MASTER_KEY",
        "CARACAL_MASTER_KEY_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    counter = itertools.count(1)
    monkeypatch.setattr("secrets.token_hex", lambda n=16: f"{next(counter):0{2 * n}x}"[-2 * n :])
    uuids = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(uuids)))
    # Key pairs derived from a counter: fingerprints, token hashes and so the ledger's tree
    # are the same in every run.
    scalars = itertools.count(1)

    def derived_pair() -> keys.KeyPair:
        private = ec.derive_private_key(next(scalars) * 7919 + 13, ec.SECP256R1())
        return keys.generate_key_pair(private)

    for module in (signing, ledger_keys):
        monkeypatch.setattr(module, "generate_key_pair", derived_pair)
    with time_machine.travel(FROZEN, tick=False):
        yield populated()


def at(area_key: str, *keys: str, ready: str | None = None) -> Any:
    """A run_before that opens an area (and presses keys there), then waits for quiet."""

    async def run(pilot: Any) -> None:
        app = pilot.app
        await until(pilot, lambda: screen_name(app) == "DashboardScreen", what="dashboard")
        await settle(pilot)
        if area_key:
            await pilot.press(area_key)
            await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if ready:
            await until(pilot, lambda: screen_name(app) == ready, what=ready)
        await steady(pilot)

    return run


async def steady(pilot: Any) -> None:
    """Quiet, and no blinking cursor: a blink half-way through would change the picture."""
    from textual.widgets import Input

    await settle(pilot)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.2)
    await settle(pilot)


SCREENS = {
    "dashboard": ("", ()),
    "workspaces": ("2", ()),
    "providers": ("3", ()),
    "principals": ("4", ()),
    "policies": ("5", ()),
    "mandates": ("6", ()),
    "delegation": ("6", ("T",)),
    "ledger": ("8", ()),
    "backups": ("9", ()),
    "logs": ("0", ()),
    "help": ("question_mark", ()),
}


@pytest.mark.parametrize("area", list(SCREENS))
def test_screen(area: str, fixed_world: dict[str, str], snap_compare: Any) -> None:
    key, keys = SCREENS[area]
    assert snap_compare(build_app(), terminal_size=SIZE, run_before=at(key, *keys))


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
@pytest.mark.parametrize("area", [a for a in SCREENS if a != "help"])
def test_screen_at_size(
    area: str, size: tuple[int, int], fixed_world: dict[str, str], snap_compare: Any
) -> None:
    """A small and a large terminal: the sidebar folds below 100 columns, the footer fits."""
    key, keys = SCREENS[area]
    assert snap_compare(build_app(), terminal_size=size, run_before=at(key, *keys))


def test_settings_screen(fixed_world: dict[str, str], snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await at("")(pilot)
        pilot.app.goto("settings")
        await steady(pilot)

    assert snap_compare(build_app(), terminal_size=SIZE, run_before=run)


MODALS = {
    "issue": ("6", ("i",), "IssueMandateModal"),
    "validate": ("6", ("v",), "ValidateMandateModal"),
    "delegate": ("6", ("d",), "DelegateMandateModal"),
    "revoke": ("6", ("x",), "RevokeMandateModal"),
    "export": ("8", ("w",), "ExportLedgerModal"),
    "policy-create": ("5", ("n",), None),
    "workspace-create": ("2", ("n",), None),
    "backup-create": ("9", ("n",), None),
    "principal-register": ("4", ("n",), None),
    "provider-add": ("3", ("n",), None),
    "quit-confirm": ("", (), None),
}


@pytest.mark.parametrize("modal", list(MODALS))
def test_modal(modal: str, fixed_world: dict[str, str], snap_compare: Any) -> None:
    key, keys, ready = MODALS[modal]
    if modal == "quit-confirm":

        async def run(pilot: Any) -> None:
            await at("")(pilot)
            pilot.app.unsaved = True
            await pilot.press("q")
            await until(pilot, lambda: screen_name(pilot.app) == "ConfirmModal")
            await steady(pilot)

        assert snap_compare(build_app(), terminal_size=SIZE, run_before=run)
        return
    assert snap_compare(build_app(), terminal_size=SIZE, run_before=at(key, *keys, ready=ready))


def test_token_modal(fixed_world: dict[str, str], snap_compare: Any) -> None:
    from caracal.flow.modals.token import TokenModal

    async def run(pilot: Any) -> None:
        await at("6")(pilot)
        # Signatures depend on freshly generated keys: show a fixed token instead.
        pilot.app.push_screen(
            TokenModal("mnd_00000000000000000001", "eyJhbGciOiJFUzI1NiJ9.eyJ2IjoxfQ.c2lnbmF0dXJl")
        )
        await settle(pilot)

    assert snap_compare(build_app(), terminal_size=SIZE, run_before=run)


def test_problem_modal(fixed_world: dict[str, str], snap_compare: Any) -> None:
    async def run(pilot: Any) -> None:
        await at("")(pilot)
        pilot.app.show_problem("Provider 'github' does not exist; see `caracal provider list`.")
        await steady(pilot)

    assert snap_compare(build_app(), terminal_size=SIZE, run_before=run)


def test_onboarding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, snap_compare: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CARACAL_HOME", str(tmp_path / ".caracal"))
    monkeypatch.setenv("CARACAL_KEYRING", "off")
    monkeypatch.delenv("CARACAL_WORKSPACE", raising=False)

    async def run(pilot: Any) -> None:
        await until(pilot, lambda: screen_name(pilot.app) == "OnboardingScreen")
        await steady(pilot)

    try:
        assert snap_compare(build_app(), terminal_size=SIZE, run_before=run)
    finally:
        os.environ.pop("CARACAL_WORKSPACE", None)  # set by the app itself, not by monkeypatch
