"""Application services: the one facade every front end (CLI, Flow, server) calls."""

from caracal.services.facade import Caracal
from caracal.services.workspaces import WorkspaceInfo, WorkspaceManager

__all__ = ["Caracal", "WorkspaceInfo", "WorkspaceManager"]
