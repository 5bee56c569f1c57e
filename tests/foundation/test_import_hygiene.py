"""The domain core stays pure, and nothing connects to a database at import time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FORBIDDEN = [
    "textual",
    "rich",
    "typer",
    "docker",
    "sqlalchemy",
    "click",
    "psycopg",
    "yaml",
    "keyring",
]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_core_imports_no_ui_or_adapter_package() -> None:
    proc = _run(
        f"""
        import importlib, pkgutil, sys
        import caracal.core
        for mod in pkgutil.walk_packages(caracal.core.__path__, "caracal.core."):
            importlib.import_module(mod.name)
        leaked = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)
        print(",".join(leaked))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"caracal.core pulled in: {proc.stdout.strip()}"


def test_importing_every_module_creates_no_engine() -> None:
    proc = _run(
        """
        import importlib, pkgutil, sqlalchemy, sqlalchemy.engine
        calls = []
        def spy(*a, **k):
            calls.append(a)
            raise RuntimeError("engine created at import time")
        sqlalchemy.create_engine = spy
        sqlalchemy.engine.create_engine = spy
        import caracal
        for mod in pkgutil.walk_packages(caracal.__path__, "caracal."):
            if mod.name.startswith(("caracal.flow", "caracal.__main__")):
                continue
            importlib.import_module(mod.name)
        print(len(calls))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_cli_help_does_not_load_the_store_or_crypto() -> None:
    proc = _run(
        """
        import sys
        from caracal.cli.main import app
        heavy = ("sqlalchemy", "cryptography", "textual", "docker")
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_every_command_prints_its_help() -> None:
    """Help text is rendered for every command (option metavars such as `A[:B]` must not be
    read as markup)."""
    import typer.main

    from caracal.cli.main import app
    from tests.support.cli import run_cli

    def walk(command: object, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, [*path, name])
        return found

    paths = walk(typer.main.get_command(app), [])
    assert len(paths) > 40
    for path in paths:
        result = run_cli(*path, "--help")
        assert result.code == 0 and "Usage:" in result.stdout, (path, result)
