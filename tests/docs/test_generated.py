"""The reference tables the site generates at build time (docs/hooks/generated.py) cover
everything the code defines; `mkdocs build --strict` in .ci/run renders them into the pages."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

from tests.docs.sessions import DOCS


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hook", DOCS / "hooks" / "generated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_marker_on_a_page_names_a_table() -> None:
    hook = _hook()
    used = {
        m.group(1) for page in DOCS.rglob("*.md") for m in hook.MARKER.finditer(page.read_text())
    }
    assert used == set(hook.GENERATORS)


def test_the_tables_cover_the_codes_the_keys_and_the_routes() -> None:
    from caracal.cli.exit_codes import ExitCode
    from caracal.core.reasons import ISSUANCE_REFUSALS, VALIDATION_DENIALS
    from caracal.flow.screens.mandates import MandatesScreen

    hook = _hook()
    exits = hook.exit_codes()
    assert all(f"| {int(c)} | `{c.name}` |" in exits for c in ExitCode)
    assert all(f"`{code}`" in hook.validation_reasons() for code in VALIDATION_DENIALS)
    assert all(f"`{code}`" in hook.issuance_reasons() for code in ISSUANCE_REFUSALS)
    assert {"/health", "/metrics", "/v1/authorize", "/mcp/{server}"} <= {
        path for path, _ in hook.endpoints()
    }
    keymap = hook.keymap()
    for binding in MandatesScreen.BINDINGS:
        if binding.description:
            assert re.search(rf"\| Mandates \| `{binding.key}` \| {binding.description} \|", keymap)
    assert "`store.url`" in hook.config_keys()


def test_the_readme_keymap_is_the_bindings() -> None:
    """The README's key table is generated from Flow's bindings: a key added, moved or renamed
    without `python -m caracal.flow.keymap` fails here, so the README never lists stale keys."""
    from pathlib import Path

    from caracal.flow.keymap import readme_with_keymap

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_with_keymap(readme) == readme, "run: python -m caracal.flow.keymap README.md"
