"""Fuzzing the files and lines people hand to Caracal: `config.yaml`, provider import JSON and
the restricted shell's input.

Cases: short mode 10,000 config files, 10,000 provider files and 10,000 shell lines;
`CARACAL_PROVING=long` 20,000 shell lines.

- `config.yaml`: the valid file of a workspace (with an `ENC[...]` value), mutated as text,
  as bytes (not UTF-8), structurally (any key set to any value: `${VAR}` references,
  `ENC[...]` near misses, dates like 2024-02-30, tags like `!!float abc`, huge numbers), plus
  random YAML (anchors and aliases, recursive and exponential, deep nesting, several
  documents). Opening the workspace either works or raises `ConfigError` with a one-line
  message; nothing else, within 2 s.
- provider import: an exported provider, mutated the same three ways, through
  `ProviderService.import_file` (one case in ten through `caracal provider import FILE`):
  imported (and then readable, with a usable catalog) or refused with a `CaracalError`; on
  the CLI an exit code from the enum other than 1, and no traceback.
- the shell: lines built from the real command tree (groups, commands, options, values),
  escape attempts and random text, with metacharacters, quotes, control and bidi characters,
  surrogates and lengths around the limit, through `ShellSession.handle`: refused in one
  `error:` line, or a built-in, or a Caracal command of a shell group, and never a process:
  `subprocess`, `os.system`, `os.exec*`, `os.spawn*`, `os.posix_spawn*`, `os.fork` and `pty`
  raise if anything calls them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import pty
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from caracal.cli.exit_codes import ExitCode
from caracal.core.errors import CaracalError, ConfigError
from caracal.services.facade import Caracal
from caracal.shell.rules import MAX_LINE, Blank, Builtin, Invoke, Refusal, interpret, shell_groups
from caracal.shell.session import ShellSession
from caracal.shell.tree import CommandNode, load_tree
from tests.security.fuzzing import (
    AWKWARD_CHARS,
    TIMEOUT,
    Shown,
    Tally,
    fast_cli,
    fuzz_settings,
    isolated_home,
    mutate_bytes,
    mutate_text,
    random_json,
    random_text,
    rngs,
    tallied,
)
from tests.shell.escapes import ESCAPE_ATTEMPTS
from tests.support.cli import run_cli

pytestmark = TIMEOUT

YAML_CHARS = (*":-#&*!|>%@`'\"[]{},?\n\n  \t0123456789", "${", "${X:", "ENC[", "~", "\ufeff")


def _ok(result: Any) -> Any:
    assert result.code == 0, result
    return result


# ---- config.yaml --------------------------------------------------------------------------
@dataclass(repr=False)
class ConfigBench(Shown):
    path: Path
    valid: str
    raw: dict[str, Any]
    tally: Tally


@pytest.fixture(scope="module")
def config_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfigBench]:
    home = tmp_path_factory.mktemp("fuzz-config") / "home"
    with isolated_home(home), fast_cli(), tallied("config.yaml") as tally:
        _ok(run_cli("workspace", "create", "conf"))
        _ok(run_cli("config", "set", "runtime.redis_url", "--stdin", input="redis://:pw@h:1/0"))
        os.environ["CARACAL_FUZZ_SET"] = "9090"
        try:
            path = home / "workspaces" / "conf" / "config.yaml"
            valid = path.read_text()
            yield ConfigBench(path, valid, yaml.safe_load(valid), tally)
        finally:
            del os.environ["CARACAL_FUZZ_SET"]


CONFIG_VALUES: list[Any] = [
    "${CARACAL_FUZZ_SET}",
    "${CARACAL_FUZZ_UNSET}",
    "${CARACAL_FUZZ_UNSET:8081}",
    "${1BAD}",
    "${CARACAL_FUZZ_SET:}",
    "$CARACAL_FUZZ_SET",
    "ENC[]",
    "ENC[AAAA]",
    "ENC[!!!]",
    "ENC[é]",
    "sqlite:///other.db",
    "postgresql+psycopg://u@127.0.0.1:1/db",
    "DEBUG",
    "TRACE",
    0,
    -1,
    65536,
    2**70,
    1.5,
    True,
    None,
    [],
    {},
    "",
    "x" * 10_000,
]
# Lines no structural mutation of a parsed file produces: tags, bad dates and numbers,
# anchors and aliases (recursive and exponential), deep nesting, several documents.
RAW_DOCUMENTS = [
    "created_at: 2024-02-30",
    "runtime:\n  port: !!float abc",
    "runtime:\n  port: !!int abc",
    "x: !!timestamp abc",
    "x: !!bool maybe",
    "runtime:\n  port: 0x_",
    "runtime:\n  port: 0b",
    "x: !!binary '!!!'",
    "x: !!python/object:os.system {}",
    "x: !!set {a}",
    "<<: 5",
    "x: &a [*a]",
    "store: &a {url: *a}",
    "workspace: conf\nstore: &s {pool_size: 2}\nledger: *s",
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]",
    "x: " + "[" * 5000,
    "x: " + "[" * 500 + "]" * 500,
    "---\nworkspace: conf\n---\nworkspace: other",
    "? [a, b]\n: c",
    "\t- x",
    "x: 1e999",
    "x: 9" + "9" * 5000,
    "runtime: {port: 80, port: 81}",
]


def config_text(rng: random.Random, bench: ConfigBench) -> bytes:
    roll = rng.random()
    if roll < 0.35:
        return mutate_text(rng, bench.valid, YAML_CHARS).encode("utf-8", "surrogatepass")
    if roll < 0.45:
        return mutate_bytes(rng, bench.valid.encode())
    if roll < 0.85:
        raw = json.loads(json.dumps(bench.raw))
        for _ in range(rng.randint(1, 3)):
            section = rng.choice([*sorted(raw), "extra"])
            if rng.random() < 0.6:
                value = copy.deepcopy(rng.choice(CONFIG_VALUES))  # never share one list or dict
            else:
                value = random_json(rng, 2)
            if isinstance(raw.get(section), dict) and rng.random() < 0.8:
                keys = [*sorted(raw[section]), random_text(rng, 6)]
                raw[section][rng.choice(keys)] = value
            elif rng.random() < 0.2:
                raw.pop(section, None)
            else:
                raw[section] = value
        try:
            text = yaml.safe_dump(raw) if rng.random() < 0.7 else json.dumps(raw)
        except (ValueError, yaml.YAMLError):
            text = json.dumps(raw)
        return text.encode("utf-8", "surrogatepass")
    document = rng.choice(RAW_DOCUMENTS)
    if rng.random() < 0.3:
        document = bench.valid + "\n" + document
    return document.encode("utf-8", "surrogatepass")


def check_config(bench: ConfigBench, data: bytes) -> None:
    bench.path.write_bytes(data)
    with bench.tally.case():
        try:
            Caracal.open("conf").close()
        except ConfigError as exc:
            bench.tally.saw("ConfigError")
            assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))
        else:
            bench.tally.saw("loaded")


@example(data=b"created_at: 2024-02-30")
@example(data=b"runtime:\n  port: 0x_\n")
@example(data=b"x: !!bool maybe")
@example(data=b"x: !!timestamp abc")
@example(data=b"x: &a [*a]")
@example(data=b"\xff\xfe")
@given(data=rngs)
@fuzz_settings(short=10_000)
def test_config_yaml_loads_or_is_one_config_error(
    config_bench: ConfigBench, data: random.Random | bytes
) -> None:
    if isinstance(data, random.Random):
        data = config_text(data, config_bench)
    check_config(config_bench, data)


def test_config_corpus(config_bench: ConfigBench) -> None:
    for document in RAW_DOCUMENTS:
        check_config(config_bench, document.encode())
        check_config(config_bench, (config_bench.valid + "\n" + document).encode())


# ---- provider import ----------------------------------------------------------------------
@dataclass(repr=False)
class ProviderBench(Shown):
    app: Caracal
    folder: Path
    valid: dict[str, Any]
    tally: Tally


@pytest.fixture(scope="module")
def provider_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderBench]:
    root = tmp_path_factory.mktemp("fuzz-providers")
    with isolated_home(root / "home"), fast_cli(), tallied("provider import") as tally:
        _ok(run_cli("workspace", "create", "prov"))
        _ok(
            run_cli(
                "provider",
                "add",
                "github",
                "--base-url",
                "https://api.github.com/v3",
                "--resource",
                "repos=Repositories",
                "--resource",
                "issues",
                "--action",
                "repos:read:GET:/repos",
                "--action",
                "issues:comment:POST:/issues",
            )
        )
        _ok(run_cli("provider", "export", "github", str(root / "github.json")))
        valid = json.loads((root / "github.json").read_text())
        app = Caracal.open("prov")
        try:
            yield ProviderBench(app, root, valid, tally)
        finally:
            app.close()


PROVIDER_VALUES: dict[str, list[Any]] = {
    "name": ["github", "gh2", "Git Hub", "a" * 65, "-x", "x/y", "é", "\ud800", "", 5, None],
    "base_url": [
        "https://h.example",
        "http://[",
        "http://[::1]:99999",
        "ftp://h",
        "https://",
        "https://u:p@h",
        "https://h?q=1",
        "https://h/\ud800",
        "https://h\x00",
        "http://１２７.0.0.1",
        "",
        7,
    ],
    "service_type": ["http", "mcp", "MCP", "", "a b", None, 1],
    "auth": ["none", "bearer", "basic", "api-key", "header", "HMAC", "", None, []],
    "header_name": ["X-Token", "X Token", "X-\ud800", "", None, 0, "Authorization"],
    "health_path": ["/", "/zen", "zen", "/a b", "/?x", "/\ud800", "", None],
    "mode": ["scoped", "passthrough", "admin", None],
    "format": ["caracal-provider/1", "caracal-provider/2", None, 1],
    "resources": [
        [],
        None,
        "repos",
        [{"id": "repos"}, {"id": "repos"}],
        [{"description": "x"}],
        [{"id": "\ud800"}],
        [{"id": "r", "description": "\ud800"}],
        [1],
        [{}],
    ],
    "actions": [
        [],
        None,
        [{"resource": "repos", "id": "read", "method": "BREW"}],
        [{"resource": "nope", "id": "read"}],
        [{"resource": "repos", "id": "read", "path_prefix": "/\ud800"}],
        [{"resource": "repos", "id": "read", "path_prefix": "x"}],
        [{"resource": "repos"}],
        ["x"],
    ],
}
PATHOLOGICAL_JSON = [
    b"[" * 100_000,
    b"1" * 5_000,
    b'{"name": NaN}',
    b"\xff\xfe{}",
    b"",
    b"null",
    b'{"name":"a","name":"b"}',
    b'{"name":' * 5_000,
]


def provider_file(rng: random.Random, bench: ProviderBench) -> bytes:
    roll = rng.random()
    text = json.dumps(bench.valid, indent=2)
    if roll < 0.3:
        return mutate_text(rng, text).encode("utf-8", "surrogatepass")
    if roll < 0.4:
        return mutate_bytes(rng, text.encode())
    if roll < 0.95:
        data = json.loads(text)
        for _ in range(rng.randint(1, 3)):
            key = rng.choice([*PROVIDER_VALUES, random_text(rng, 6)])
            if key in data and rng.random() < 0.15:
                del data[key]
            elif key in PROVIDER_VALUES and rng.random() < 0.8:
                data[key] = copy.deepcopy(rng.choice(PROVIDER_VALUES[key]))
            else:
                data[key] = random_json(rng, 2)
        if rng.random() < 0.5:
            data["name"] = rng.choice(["gh2", "gh3", "github"])  # new names, so imports succeed
        return json.dumps(data, ensure_ascii=rng.random() < 0.7).encode("utf-8", "surrogatepass")
    return rng.choice(PATHOLOGICAL_JSON)


def check_provider(bench: ProviderBench, data: bytes, replace: bool, via_cli: bool) -> None:
    path = bench.folder / "import.json"
    path.write_bytes(data)
    with bench.tally.case():
        if via_cli:
            extra = ("--replace",) if replace else ()
            result = run_cli("-w", "prov", "provider", "import", str(path), *extra)
            assert result.code in set(ExitCode) - {ExitCode.INTERNAL}, result
            assert "Traceback" not in result.stderr and "internal error" not in result.stderr
            bench.tally.saw(f"cli exit {result.code}")
            return
        try:
            view = bench.app.providers.import_file(path, replace=replace)
        except CaracalError as exc:
            bench.tally.saw(type(exc).__name__)
            assert "\n" not in exc.message, exc.message
            return
        bench.tally.saw("imported")
        again = bench.app.providers.get(view.spec.name)
        assert again.spec == view.spec
        bench.app.providers.catalog()
        bench.app.providers.scopes()


@example(data=b"[" * 100_000, replace=False, via_cli=False)
@example(data=b"\xff\xfe{}", replace=False, via_cli=False)
@example(
    data=b'{"name":"gh9","base_url":"https://h","resources":[{"id":"r","description":"\\ud800"}],'
    b'"actions":[{"resource":"r","id":"a"}]}',
    replace=False,
    via_cli=False,
)
@example(
    data=b'{"name":"gh8","base_url":"https://h","resources":[{"id":"r"}],'
    b'"actions":[{"resource":"r","id":"a","path_prefix":"/\\udcff"}]}',
    replace=True,
    via_cli=True,
)
@given(data=rngs, replace=st.booleans(), via_cli=st.integers(0, 9).map(lambda n: n == 0))
@fuzz_settings(short=10_000)
def test_provider_import_is_ok_or_a_caracal_error(
    provider_bench: ProviderBench, data: random.Random | bytes, replace: bool, via_cli: bool
) -> None:
    if isinstance(data, random.Random):
        data = provider_file(data, provider_bench)
    check_provider(provider_bench, data, replace, via_cli)


# ---- the restricted shell -----------------------------------------------------------------
@dataclass(repr=False)
class ShellBench(Shown):
    tree: CommandNode
    groups: frozenset[str]
    runs: list[list[str]]
    session: ShellSession
    tally: Tally


def _refuse_processes(mp: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the shell started a process: {args!r}")

    mp.setattr(subprocess, "Popen", forbidden)
    for module, names in (
        (
            os,
            [
                "system",
                "popen",
                "fork",
                "forkpty",
                "posix_spawn",
                "posix_spawnp",
                "execv",
                "execve",
                "execvp",
                "execvpe",
                "execl",
                "execle",
                "execlp",
                "execlpe",
                "spawnv",
                "spawnve",
                "spawnvp",
                "spawnvpe",
                "spawnl",
                "spawnle",
                "spawnlp",
                "spawnlpe",
            ],
        ),
        (pty, ["spawn", "fork"]),
    ):
        for name in names:
            if hasattr(module, name):
                mp.setattr(module, name, forbidden)


@pytest.fixture(scope="module")
def shell_bench() -> Iterator[ShellBench]:
    tree = load_tree()
    runs: list[list[str]] = []

    def runner(argv: list[str]) -> int:
        runs.append(argv)
        return 0

    with pytest.MonkeyPatch.context() as mp, tallied("shell") as tally:
        _refuse_processes(mp)
        session = ShellSession(tree, runner, ["--workspace", "demo"])
        yield ShellBench(tree, frozenset(shell_groups(tree)), runs, session, tally)


def _words(rng: random.Random, tree: CommandNode) -> list[str]:
    """A command line's words from the real tree: options, a path of commands, its options
    with values, and now and then a word that is not there."""
    words: list[str] = []
    if rng.random() < 0.2:
        words.append("caracal")
    if rng.random() < 0.15:
        words += rng.choice(
            [
                ["--workspace", "demo"],
                ["-w", "x"],
                ["--version"],
                ["-h"],
                ["--workspace"],
                ["--bogus"],
            ]
        )
    node = tree
    while node.children and rng.random() < 0.95:
        roll = rng.random()
        if roll < 0.6 and node is tree:
            name = rng.choice(shell_groups(tree))
        elif roll < 0.85:
            name = rng.choice(list(node.children))
        else:
            name = rng.choice(["help", "exit", "?", "clear", random_text(rng, 8)])
        words.append(name)
        child = node.children.get(name)
        if child is None:
            break
        node = child
    for _ in range(rng.randrange(4)):
        if node.options and rng.random() < 0.7:
            option = rng.choice(node.options)
            words.append(option)
            if option in node.value_options:
                words.append(_word(rng))
        else:
            words.append(_word(rng))
    return words


def _word(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return rng.choice(["x", "1h", "provider:a:action:b", "demo", "alice", "mnd_1", "-5", "é"])
    return random_text(rng, 12)


def _quote(rng: random.Random, word: str) -> str:
    style = rng.random()
    if style < 0.7 or not word:
        return word
    if style < 0.85:
        return "'" + word + "'"
    return '"' + word + '"'


def shell_line(rng: random.Random, tree: CommandNode) -> str:
    roll = rng.random()
    if roll < 0.55:
        sep = rng.choice([" ", " ", "  ", "\t"])
        line = sep.join(_quote(rng, w) for w in _words(rng, tree))
    elif roll < 0.7:
        line = rng.choice(ESCAPE_ATTEMPTS)
    elif roll < 0.8:
        line = random_text(rng, 80)
    elif roll < 0.85:
        line = rng.choice(["principal list", "help", "x"]) * (MAX_LINE // rng.choice([13, 4, 1]))
        line = line[: MAX_LINE + rng.choice([-1, 0, 1, 100])]
    else:
        line = " ".join(_words(rng, tree))
    if roll < 0.8 and rng.random() < 0.25:
        line = mutate_text(rng, line, AWKWARD_CHARS, max_ops=2)
    return line


def check_shell(bench: ShellBench, line: str) -> None:
    with bench.tally.case():
        action = interpret(line, bench.tree)
        bench.tally.saw(type(action).__name__)
        if isinstance(action, Refusal):
            assert action.message.startswith("error: "), action
            assert "\n" not in action.message and len(action.message) < 400, action
        elif isinstance(action, Invoke):
            argv = list(action.argv)
            while argv and argv[0].startswith("-"):  # the root options and their values
                argv = (
                    argv[2:]
                    if argv[0] in bench.tree.value_options and "=" not in argv[0]
                    else argv[1:]
                )
            assert not argv or argv[0] in bench.groups, action
            if not argv:
                assert "--version" in action.argv, action
        else:
            assert isinstance(action, Blank | Builtin), action
        before = len(bench.runs)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            step = bench.session.handle(line)
        assert isinstance(step.status, int)
        assert "Traceback" not in err.getvalue()
        assert err.getvalue().count("\n") <= 1, err.getvalue()  # a refusal is one line
        ran = bench.runs[before:]
        if isinstance(action, Invoke):
            assert ran == [["--workspace", "demo", *action.argv]], (ran, action)
        elif isinstance(action, Builtin) and action.name == "help" and action.args:
            assert ran == [[*action.args, "--help"]], (ran, action)
        else:
            assert ran == [], (ran, action)


@example(line="principal list\udcff")
@example(line="\u202eprincipal list")
@example(line="caracal --workspace")
@given(line=rngs)
@fuzz_settings(short=10_000, long=20_000)
def test_shell_lines_are_refused_or_a_known_command(
    shell_bench: ShellBench, line: random.Random | str
) -> None:
    if isinstance(line, random.Random):
        line = shell_line(line, shell_bench.tree)
    check_shell(shell_bench, line)
