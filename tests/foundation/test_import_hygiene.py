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


def test_the_layers_hold_as_import_contracts() -> None:
    """`lint-imports` (pyproject.toml [tool.importlinter]): front ends call the services, the
    services use the adapters, core imports none of them; Flow and the runtime never import
    the CLI; the runtime never the store; the services never a database driver."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    linter = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run(
        [str(linter), "--config", str(root / "pyproject.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_core_owns_no_exit_code_and_names_no_command_line_flag() -> None:
    """Exit codes are the CLI's (`caracal.cli.exit_codes`); core errors carry a kind, and a
    message in core never names a flag (the front end adds how an input is given there)."""
    import ast
    import re
    from pathlib import Path

    import caracal.core
    import caracal.core.errors

    assert not hasattr(caracal.core.errors, "ExitCode")
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    found = []
    for path in sorted(Path(caracal.core.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                continue  # `python -m caracal.core.proofs` has its own options
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            for part in ast.walk(node.exc):
                if (
                    isinstance(part, ast.Constant)
                    and isinstance(part.value, str)
                    and id(part) not in docstrings
                    and flag.search(part.value)
                ):
                    found.append(f"{path.name}:{part.lineno}: {part.value}")
    assert found == []


def test_flow_reads_scopes_through_the_core_grammar() -> None:
    """The scope grammar and what a wildcard covers live in `caracal.core.scopes`; Flow's
    screens and forms call it instead of splitting scopes on ':' themselves."""
    from pathlib import Path

    import caracal.flow

    offenders = [
        f"{path.relative_to(Path(caracal.flow.__file__).parent)}: {needle}"
        for path in sorted(Path(caracal.flow.__file__).parent.rglob("*.py"))
        for needle in ('split(":")', 'rsplit(":"', '":resource:"', '":action:"')
        if needle in path.read_text()
    ]
    assert offenders == []
