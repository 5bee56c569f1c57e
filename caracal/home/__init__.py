"""CARACAL_HOME layout, workspaces and their files."""
