"""Which codes a test module asserts: read from its source, so the answer does not depend on
which tests ran before, or whether the module ran whole."""

from __future__ import annotations

import ast
from pathlib import Path


def codes_asserted(module_file: str, *helpers: str) -> set[str]:
    """The string constants passed as the last argument of calls to `helpers` (the module's
    asserting functions, such as `denied(result, "MANDATE_REVOKED")`) anywhere in the module."""
    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else None
        last = node.args[-1]
        if name in helpers and isinstance(last, ast.Constant) and isinstance(last.value, str):
            found.add(last.value)
    return found
