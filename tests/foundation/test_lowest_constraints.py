"""The lowest-versions job installs what pyproject.toml claims: ci/lowest-constraints.txt is
generated from the floors of `[project] dependencies` and must not drift from them."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "lowest_constraints.py"
CONSTRAINTS = ROOT / "ci" / "lowest-constraints.txt"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lowest_constraints", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_constraints_are_the_floors_of_pyproject() -> None:
    wanted = _generator().render()
    assert CONSTRAINTS.read_text(encoding="utf-8") == wanted, (
        "ci/lowest-constraints.txt is stale: run `python3 tools/lowest_constraints.py`"
    )


def test_every_direct_dependency_is_pinned_to_its_floor() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].split(";", 1)[0].strip()
        if requirement:
            name, floor = requirement.split("==")
            pins[name] = floor
    assert len(pins) == len(dependencies)
    for dependency in dependencies:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", dependency)[0]).lower()  # type: ignore[index]
        floor = re.search(r">=\s*([0-9][A-Za-z0-9.]*)", dependency)
        assert floor is not None, f"{dependency!r} has no floor"
        assert pins.get(name) == floor[1], dependency


def test_markers_are_kept_and_the_check_passes(tmp_path: Path) -> None:
    generator = _generator()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["rich>=14.2", "uvloop>=0.19; os_name == \'posix\'"]\n'
    )
    assert generator.floors(pyproject) == [
        ("rich", "14.2", None),
        ("uvloop", "0.19", "os_name == 'posix'"),
    ]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr  # the committed file is current
