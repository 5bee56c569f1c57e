"""The launcher's files on the host: private folders (0700) and files (0600), whatever the
umask, and older, looser ones tightened (checked on the real engine in tests/stack)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from caracal.launcher.state import SECRET_NAMES, StackState


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_prepare_makes_everything_private(home: Path) -> None:
    old = os.umask(0o000)  # the loosest umask: modes come from the launcher, not from it
    try:
        state = StackState(home / "stack" / "caracal")
        state.prepare()
    finally:
        os.umask(old)
    for folder in (home, home / "stack", state.root, state.secrets_dir, state.host_io):
        assert mode(folder) == 0o700, folder
    for name in SECRET_NAMES:
        assert mode(state.secrets_dir / name) == 0o600, name
    copy = state.service_secret("runtime", "master_key")
    assert mode(copy) == 0o600 and mode(copy.parent) == 0o700
    assert copy.read_text() == (state.secrets_dir / "master_key").read_text()


def test_older_looser_files_are_tightened(home: Path) -> None:
    state = StackState(home / "stack" / "caracal")
    state.prepare()
    os.chmod(home, 0o755)  # noqa: S103 - what an older launcher left
    os.chmod(state.host_io, 0o777)  # noqa: S103 - what an older launcher left
    for name in SECRET_NAMES:
        os.chmod(state.secrets_dir / name, 0o644)
    before = {n: (state.secrets_dir / n).read_text() for n in SECRET_NAMES}
    state.prepare()
    assert mode(home) == 0o700 and mode(state.host_io) == 0o700
    for name in SECRET_NAMES:
        assert mode(state.secrets_dir / name) == 0o600
        assert (state.secrets_dir / name).read_text() == before[name]  # kept, not replaced
