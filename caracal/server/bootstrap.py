"""What the runtime does once before serving: inside the container stack, make sure there is a
workspace to serve (the stack's home volume starts empty)."""

from __future__ import annotations

import logging
import os

from caracal.core.errors import ConflictError
from caracal.services.workspaces import WorkspaceManager

log = logging.getLogger(__name__)


def ensure_stack_workspace(manager: WorkspaceManager | None = None) -> str | None:
    """In a container with no workspace yet, create `$CARACAL_STACK_WORKSPACE` (default
    `default`) on `$CARACAL_STORE_URL`. Returns the workspace name that will be served."""
    manager = manager or WorkspaceManager()
    if os.environ.get("CARACAL_RUNTIME_IN_CONTAINER") == "1" and not manager.names():
        name = os.environ.get("CARACAL_STACK_WORKSPACE") or "default"
        try:
            info = manager.create(name, store_url=os.environ.get("CARACAL_STORE_URL") or None)
            log.info("created workspace %s (%s)", info.name, info.store)
        except ConflictError:
            pass  # another container of the stack created it first
    return manager.active_name()
