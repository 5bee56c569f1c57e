"""A snapshot of every area at 80×24, 130×40 and 200×60, and of every dialog at 80×24 and
200×60, on a workspace built the same way every run: frozen time, counter-based ids, and a home
folder of the run's own that Flow shows as `~/.caracal` (so the pictures do not depend on where
it is). Review changes with
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
from tests.flow.conftest import ok, populated, screen_name, settle, until

FROZEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SIZES = {"80x24": (80, 24), "130x40": (130, 40), "200x60": (200, 60)}
# Areas at all three; dialogs (a third of the run each size) at the smallest and largest.
all_sizes = pytest.mark.parametrize("size", list(SIZES))
sizes = pytest.mark.parametrize("size", ["80x24", "200x60"])


@pytest.fixture
def fixed_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CARACAL_HOME", str(tmp_path / ".caracal"))
    monkeypatch.setenv("CARACAL_KEYRING", "off")
    # No runtime answers on port 9: the Providers pane says the same in every run, whatever
    # listens on the default port of this machine.
    monkeypatch.setenv("CARACAL_RUNTIME_URL", "http://127.0.0.1:9")
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
    from textual.widgets import Input, TextArea

    await settle(pilot)
    for field in pilot.app.screen.query("Input, TextArea"):
        assert isinstance(field, Input | TextArea)
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
    "mandates-scrolled": ("6", ("l", "l", "l", "l")),  # the columns past SUBJECT, at 80 wide
    "delegation": ("6", ("T",)),
    "ledger": ("8", ()),
    "backups": ("9", ()),
    "logs": ("0", ()),
    "help": ("question_mark", ()),
}


@all_sizes
@pytest.mark.parametrize("area", list(SCREENS))
def test_screen(area: str, size: str, fixed_world: dict[str, str], snap_compare: Any) -> None:
    """At 80 columns the sidebar folds, the footer ends in `? more`, tables scroll sideways."""
    key, keys = SCREENS[area]
    assert snap_compare(build_app(), terminal_size=SIZES[size], run_before=at(key, *keys))


@all_sizes
def test_settings_screen(size: str, fixed_world: dict[str, str], snap_compare: Any) -> None:
    assert snap_compare(build_app(), terminal_size=SIZES[size], run_before=settings())


def settings(*keys: str, ready: str | None = None) -> Any:
    async def run(pilot: Any) -> None:
        await at("")(pilot)
        pilot.app.goto("settings")
        await until(pilot, lambda: screen_name(pilot.app) == "SettingsScreen", what="settings")
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if ready:
            await until(pilot, lambda: screen_name(pilot.app) == ready, what=ready)
        await steady(pilot)

    return run


def quit_confirm() -> Any:
    async def run(pilot: Any) -> None:
        await at("")(pilot)
        pilot.app.unsaved = True
        await pilot.press("q")
        await until(pilot, lambda: screen_name(pilot.app) == "ConfirmModal")
        await steady(pilot)

    return run


def token() -> Any:
    from caracal.flow.modals.token import TokenModal

    async def run(pilot: Any) -> None:
        await at("6")(pilot)
        # Signatures depend on freshly generated keys: show a fixed token instead.
        pilot.app.push_screen(
            TokenModal("mnd_00000000000000000001", "eyJhbGciOiJFUzI1NiJ9.eyJ2IjoxfQ.c2lnbmF0dXJl")
        )
        await steady(pilot)

    return run


def problem() -> Any:
    async def run(pilot: Any) -> None:
        await at("")(pilot)
        pilot.app.show_problem("Provider 'github' does not exist; see `caracal provider list`.")
        await steady(pilot)

    return run


def with_spare_workspace() -> None:
    ok("workspace", "create", "spare")


def with_locked_backup() -> None:
    ok("backup", "create", "--lock-key-env", "SNAPSHOT_LOCK_KEY")
    # Backups lists an archive's time from its file: the frozen clock does not reach the disk.
    from caracal.services.workspaces import WorkspaceManager

    for archive in WorkspaceManager().paths("demo").backups.iterdir():
        os.utime(archive, (FROZEN.timestamp(), FROZEN.timestamp()))


MODALS: dict[str, tuple[Any, Any]] = {
    # name: (how to open it, what the world needs first)
    "issue": (lambda: at("6", "i", ready="IssueMandateModal"), None),
    "validate": (lambda: at("6", "v", ready="ValidateMandateModal"), None),
    "delegate": (lambda: at("6", "d", ready="DelegateMandateModal"), None),
    "revoke": (lambda: at("6", "x", ready="RevokeMandateModal"), None),
    "token": (token, None),
    "export": (lambda: at("8", "w", ready="ExportLedgerModal"), None),
    "policy-create": (lambda: at("5", "n", ready="CreatePolicyModal"), None),
    "policy-deactivate": (lambda: at("5", "G", "x", ready="DeactivatePolicyModal"), None),
    "workspace-create": (lambda: at("2", "n", ready="CreateWorkspaceModal"), None),
    "workspace-delete": (
        lambda: at("2", "j", "x", ready="DeleteWorkspaceModal"),
        with_spare_workspace,
    ),
    "backup-create": (lambda: at("9", "n", ready="CreateBackupModal"), None),
    "backup-verify": (lambda: at("9", "v", ready="VerifyArchiveModal"), with_locked_backup),
    "backup-restore": (lambda: at("9", "r", ready="RestoreArchiveModal"), with_locked_backup),
    "principal-register": (lambda: at("4", "n", ready="RegisterPrincipalModal"), None),
    "principal-rotate": (lambda: at("4", "R", ready="RotateKeyModal"), None),
    "provider-add": (lambda: at("3", "n", ready="AddProviderModal"), None),
    "provider-edit": (lambda: at("3", "e", ready="EditProviderModal"), None),
    "provider-catalog": (lambda: at("3", "o", ready="ProviderCatalogModal"), None),
    "settings-value": (lambda: settings("j", "e", ready="EditSettingModal"), None),
    "quit-confirm": (quit_confirm, None),
    "problem": (problem, None),
}


@sizes
@pytest.mark.parametrize("modal", list(MODALS))
def test_modal(
    modal: str,
    size: str,
    fixed_world: dict[str, str],
    snap_compare: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every dialog fits: at 80×24 its body scrolls and its buttons and keys stay in view."""
    opener, needs = MODALS[modal]
    if needs is not None:
        monkeypatch.setenv("SNAPSHOT_LOCK_KEY", "snapshot lock key")
        needs()
    assert snap_compare(build_app(), terminal_size=SIZES[size], run_before=opener())


@sizes
def test_onboarding(
    size: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, snap_compare: Any
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CARACAL_HOME", str(tmp_path / ".caracal"))
    monkeypatch.setenv("CARACAL_KEYRING", "off")
    monkeypatch.delenv("CARACAL_WORKSPACE", raising=False)

    async def run(pilot: Any) -> None:
        await until(pilot, lambda: screen_name(pilot.app) == "OnboardingScreen")
        await steady(pilot)

    try:
        assert snap_compare(build_app(), terminal_size=SIZES[size], run_before=run)
    finally:
        os.environ.pop("CARACAL_WORKSPACE", None)  # set by the app itself, not by monkeypatch
