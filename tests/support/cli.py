"""Run the real `caracal` entry point, in-process (fast) or as a subprocess (end to end)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def one_error(self) -> str:
        """The one error this run printed on stderr, as `error: MESSAGE`: a plain line, or
        (with --json) the JSON object's message; the object must carry the exit code."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self
        if lines[0].startswith("{"):
            body = json.loads(lines[0])
            assert body["exit_code"] == self.code, self
            return f"error: {body['message']}"
        assert lines[0].startswith("error: "), self
        return lines[0]

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Result(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


class _Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def run_cli(*args: str, input: str = "") -> Result:
    """Call the CLI's error boundary in this process, with stdin/stdout/stderr captured."""
    from caracal.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = _Stdin(input)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = run(list(args))
    finally:
        sys.stdin = old_stdin
    return Result(code, out.getvalue(), err.getvalue())


def run_cli_process(
    *args: str, input: str = "", env: dict[str, str] | None = None, timeout: float = 60
) -> Result:
    """Run `python -m caracal` as a child process (real argv, real exit code)."""
    proc = subprocess.run(
        [sys.executable, "-m", "caracal", *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
