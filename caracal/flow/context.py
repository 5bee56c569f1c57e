"""What Flow holds open: the home, the current workspace's facade and its Flow state.

Every facade call goes through `call`, which serialises them (the facade's caches are not
meant for concurrent threads) and runs in a worker thread, never on the UI loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from caracal.services.facade import Caracal
    from caracal.services.workspaces import WorkspaceManager

T = TypeVar("T")
MAX_RECENT = 20


class FlowContext:
    def __init__(self, workspace: str | None = None, env: dict[str, str] | None = None) -> None:
        self.requested = workspace
        self._env = env
        self._manager: WorkspaceManager | None = None
        self._caracal: Caracal | None = None
        self._lock = threading.RLock()
        # Flow's own state file has a lock of its own: saving a view (two fsyncs, slow on a
        # busy disk) never holds up the store reads of the screen being opened.
        self._state_lock = threading.Lock()

    @property
    def manager(self) -> WorkspaceManager:
        """Built on first use (in a worker): importing the services is the slow part of start-up."""
        if self._manager is None:
            from caracal.services.workspaces import WorkspaceManager

            self._manager = WorkspaceManager(env=self._env)
        return self._manager

    # ---- workspace ------------------------------------------------------------------------
    @property
    def caracal(self) -> Caracal:
        if self._caracal is None:
            raise RuntimeError("no workspace is open")
        return self._caracal

    @property
    def has_workspace(self) -> bool:
        return self._caracal is not None

    @property
    def workspace_name(self) -> str | None:
        return self._caracal.name if self._caracal is not None else None

    def open(self, name: str | None = None) -> Caracal | None:
        """Open `name` (default: the requested, then the active workspace); None when the home
        has no workspace yet (Flow then onboards)."""
        from caracal.services.facade import Caracal

        with self._lock:
            target = (
                name
                or self.requested
                or self.manager.env.get("CARACAL_WORKSPACE")
                or self.manager.active_name()
            )
            if target is None or not self.manager.exists(target):
                if name is not None:
                    self.manager.resolve(name)  # raises the clear NotFound error
                return None
            fresh = Caracal(self.manager, target, actor="flow:" + _user())
            _ = fresh.store  # open (and migrate) now, in this worker thread
            # The dashboard's service, imported here rather than on the UI thread when the
            # dashboard asks for its first figures (it held the first frame with counts).
            _ = fresh.pulse
            if self._caracal is not None:
                self._caracal.close()
            self._caracal = fresh
            return fresh

    def switch(self, name: str) -> Caracal:
        """Make `name` the active workspace and open it: config, logs, store and state follow."""
        with self._lock:
            self.manager.use(name)
            opened = self.open(name)
            assert opened is not None
            return opened

    def close(self) -> None:
        with self._lock:
            if self._caracal is not None:
                self._caracal.close()
                self._caracal = None

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return fn(*args, **kwargs)

    # ---- Flow state (per workspace) --------------------------------------------------------
    def state_path(self) -> Path | None:
        return self._caracal.paths.flow_state if self._caracal is not None else None

    def read_state(self) -> dict[str, Any]:
        from caracal.home.flow_state import default_state, read_state

        path = self.state_path()
        return read_state(path) if path is not None else default_state()

    def update_state(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        from caracal.home.flow_state import read_state, write_state

        path = self.state_path()
        with self._state_lock:
            if path is None:
                return {}
            state = read_state(path)
            change(state)
            write_state(path, state)
            return state

    def remember(self, action: str) -> None:
        """Add a line to the workspace's recent actions (newest first)."""
        import time

        def change(state: dict[str, Any]) -> None:
            recent = [r for r in state.get("recent_actions", []) if isinstance(r, dict)]
            recent.insert(0, {"at": int(time.time()), "action": action})
            state["recent_actions"] = recent[:MAX_RECENT]

        self.update_state(change)

    def reset_state(self) -> None:
        from caracal.home.flow_state import default_state, write_state

        path = self.state_path()
        if path is not None:
            write_state(path, default_state())


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
