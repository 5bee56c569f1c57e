#!/usr/bin/env python3
"""Bootstrap a local virtualenv and run Caracal or its tests.

    python3 dev.py run [CARACAL ARGS...]   # the product on the embedded store
    python3 dev.py test [PYTEST ARGS...]   # the whole test suite

Both commands are idempotent: the virtualenv under .venv is created once and
re-synchronised only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
MARKER = VENV / ".caracal-install"
MIN_PYTHON = (3, 11)


def _venv_python() -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / "python"


def _wanted_marker(extras: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return f"{digest}:{extras}"


def ensure_venv(extras: str) -> Path:
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"error: Caracal needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    python = _venv_python()
    if not python.exists():
        print("Creating virtualenv in .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    current = MARKER.read_text().strip() if MARKER.exists() else ""
    installed = {e for e in current.split(":", 1)[1].split(",") if e} if ":" in current else set()
    wanted_extras = sorted({e for e in extras.split(",") if e} | installed)
    wanted = _wanted_marker(",".join(wanted_extras))
    if current != wanted:
        spec = "." + (f"[{','.join(wanted_extras)}]" if wanted_extras else "")
        print(f"Installing {spec} into .venv ...", file=sys.stderr)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-e", spec], cwd=ROOT, check=True
        )
        MARKER.write_text(wanted + "\n")
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        python = ensure_venv("")
        args = rest or ["flow", "--local"]
        return subprocess.call([str(python), "-m", "caracal", *args])
    python = ensure_venv("dev")
    return subprocess.call([str(python), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: bootstrap step failed ({exc}); check your network access to PyPI.")
    except KeyboardInterrupt:
        sys.exit(130)
