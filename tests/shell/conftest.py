from __future__ import annotations

import pytest

from caracal.shell.tree import CommandNode, load_tree


@pytest.fixture(scope="session")
def tree() -> CommandNode:
    """The real `caracal` command tree."""
    return load_tree()
