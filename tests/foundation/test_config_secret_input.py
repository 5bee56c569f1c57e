"""Secret settings from a masked input (Flow): taken literally, stored sealed, never handed
back; only secret keys, and never the store's location."""

from __future__ import annotations

from pathlib import Path

import pytest

from caracal.core.errors import ValidationError
from caracal.services.facade import Caracal
from tests.support.cli import run_cli


@pytest.fixture
def workspace(home: Path) -> Path:
    assert run_cli("workspace", "create", "demo").code == 0
    return home / "workspaces" / "demo"


def test_a_secret_is_taken_literally_sealed_and_cleared(workspace: Path) -> None:
    config = workspace / "config.yaml"
    with Caracal.open() as caracal:
        # `0123` would be the number 123 read as YAML; a typed secret is text as typed.
        assert caracal.settings.set_secret("runtime.redis_url", "0123") is True
        assert "0123" not in config.read_text() and "ENC[" in config.read_text()
        assert caracal.settings.get("runtime.redis_url", reveal=True) == "0123"
        assert caracal.settings.set_secret("runtime.redis_url", None) is False
        assert caracal.settings.get("runtime.redis_url", reveal=True) is None


def test_only_secret_settings_and_never_the_store_location(workspace: Path) -> None:
    before = (workspace / "config.yaml").read_text()
    with Caracal.open() as caracal:
        with pytest.raises(ValidationError, match="not a secret setting"):
            caracal.settings.set_secret("runtime.port", "9000")
        with pytest.raises(ValidationError, match=r"store\.url cannot be changed here"):
            caracal.settings.set_secret("store.url", "sqlite:///elsewhere.db")
        with pytest.raises(ValidationError, match="Type the new value"):
            caracal.settings.set_secret("runtime.redis_url", "")
    assert (workspace / "config.yaml").read_text() == before
