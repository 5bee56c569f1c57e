"""The `console` sessions in docs/ and the README: read them from the Markdown, run them in bash.

A fenced block whose language is `console` is a session: lines starting with `$ ` are
commands (a trailing backslash continues one on the next line), the lines under a command are
output it must print, in order, among whatever else it prints (`...` matches anything within a
line; runs of spaces match any spacing). A command exits 0 unless it ends with `# exit N`.
Examples that need Docker or a network are written as `sh` blocks instead, which are shown
and never run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```console\n(.*?)^```$", re.MULTILINE | re.DOTALL)
EXIT = re.compile(r"#\s*exit (\d+)\s*$")
SEPARATOR = "@@caracal-docs-session rc="


@dataclass
class Command:
    page: str
    line: int
    text: str
    expected: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        found = EXIT.search(self.text)
        return int(found.group(1)) if found else 0


def commands(page: Path) -> list[Command]:
    text = page.read_text()
    out: list[Command] = []
    for block in FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start(1)) + 1
        current: Command | None = None
        for offset, line in enumerate(block.group(1).splitlines()):
            if current is not None and current.text.endswith("\\") and not current.expected:
                current.text += "\n" + line
            elif line.startswith("$ "):
                current = Command(page.name, first_line + offset, line[2:])
                out.append(current)
            elif current is None:
                raise ValueError(f"{page.name}:{first_line + offset}: output before any command")
            elif line.strip():
                current.expected.append(line)
    return out


def pages() -> list[Path]:
    """The pages with sessions: the site's, and the README's tour."""
    found = sorted(p for p in DOCS.rglob("*.md") if FENCE.search(p.read_text()))
    return [*found, DOCS.parent / "README.md"]


def _spaced(line: str) -> str:
    return re.sub(r"\s+", " ", line.strip())


def _pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part.strip()) for part in _spaced(expected).split("...")))


def matches(expected: list[str], output: str) -> str | None:
    """None when every expected line matches a line of the output, in order; else the first
    expected line that does not."""
    lines = [_spaced(line) for line in output.splitlines()]
    at = 0
    for want in expected:
        pattern = _pattern(want)
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


def run(session: list[Command], home: Path) -> list[tuple[int, str]]:
    """Run the commands in one bash, in order; (exit code, output) of each."""
    script = ["exec 2>&1"]
    for command in session:
        script += [command.text, f'printf "\\n{SEPARATOR}%s@@\\n" "$?"']
    # CARACAL_DOCS_BIN runs the sessions against another installed `caracal` (a wheel installed
    # with pipx or uv, say) instead of this virtualenv's.
    bin_dir = os.environ.get("CARACAL_DOCS_BIN") or str(Path(sys.executable).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CARACAL_") or key == "CARACAL_REQUIRE_POSTGRES"
    }
    env.update(
        CARACAL_HOME=str(home),
        CARACAL_KEYRING="off",
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        COLUMNS="200",
        NO_COLOR="1",
        TERM="dumb",
    )
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input="\n".join(script) + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=600,
    )
    codes = [int(m) for m in re.findall(re.escape(SEPARATOR) + r"(\d+)@@", proc.stdout)]
    # The output of command i sits between separator i-1 and separator i.
    outputs = re.split(re.escape(SEPARATOR) + r"\d+@@\n?", proc.stdout)
    return list(zip(codes, outputs[: len(codes)], strict=True))
