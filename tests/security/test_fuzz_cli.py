"""Fuzzing the command line: random argv (and stdin) through `caracal.cli.main.run`, the CLI's
one error boundary.

Cases: 10,000 command lines (short and long mode alike). Each case runs in a
fresh copy of a home holding a realistic workspace (so cases are independent and repeatable),
with the working directory in the case's own folder. Command lines are built from the real
command tree: a command path, positional arguments from pools that fit it (mandate, principal,
policy and provider ids and names, config keys, files), options with values that fit them
(scopes, durations, JSON intents, URLs, names) and, one time in four, edits (words dropped,
duplicated, swapped, changed with odd characters, surrogates included, since undecodable argv
bytes arrive as lone surrogates). Commands that serve, open a UI or drive a container stack
(`flow`, `serve`, `cli`, `up`, `purge`, `reset`) are left out; the others that talk to Docker
find no engine (DOCKER_HOST points nowhere). Words that would name a path outside the case
folder (`/...`, `~...`, `..`) are made relative.

Every command must end with an exit code of the documented enum other than 1 (internal
error), within 2 s, with no traceback, logging error or "internal error" on stderr.

The click command tree is built once for all cases (`fast_cli`): typer rebuilds it on every
`run` (about 90 ms), which would otherwise dominate the run time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given

from caracal.cli.exit_codes import ExitCode
from caracal.cli.main import run
from caracal.home.config import known_keys
from tests.security.fuzzing import (
    BOUND_INTENT,
    CLOSED_URL,
    COMMENT,
    DOCS_READ,
    FILES,
    ISSUES,
    READ,
    REPOS,
    TIMEOUT,
    WRITE,
    Shown,
    Tally,
    World,
    build_world,
    fast_cli,
    fuzz_settings,
    isolated_home,
    mutate_text,
    random_text,
    rngs,
    tallied,
)
from tests.support.cli import run_cli

pytestmark = TIMEOUT

EXCLUDED = {"flow", "serve", "cli", "up", "purge", "reset"}
EXIT_CODES = {int(code) for code in ExitCode} - {int(ExitCode.INTERNAL)}
LOCK_ENV, CRED_ENV = "CARACAL_FUZZ_LOCK", "CARACAL_FUZZ_CRED"


@dataclass(repr=False)
class Template(Shown):
    root: Path  # the template: home/ and work/ (the files commands are given)
    cases: Path
    world: World
    pools: dict[str, list[str]]
    specs: list[Spec]
    tally: Tally
    counter: int = 0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    root = tmp_path_factory.mktemp("fuzz-cli")
    work = root / "work"
    work.mkdir()
    with (
        isolated_home(root / "home"),
        fast_cli(),
        pytest.MonkeyPatch.context() as mp,
        tallied("cli argv") as tally,
    ):
        mp.setenv(LOCK_ENV, "a lock key of twenty-odd characters")
        mp.setenv(CRED_ENV, "ghp_fuzz_credential")
        mp.setenv("SHORT_LOCK", "short")
        world = build_world()
        assert run_cli("provider", "export", "github", str(work / "provider.json")).code == 0
        assert run_cli("backup", "create", "--output", str(work / "archive.tar.gz")).code == 0
        (work / "exists.txt").write_text("x")
        policies = [p["id"] for p in run_cli("policy", "list", "--json").json()]
        mandates = [g.mandate_id for g in world.grants.values()]
        pools = {
            "mandate": [*mandates, mandates[0][:8], "mnd_", "mnd_00000000000000000000"],
            "principal": [*world.principals, *world.principals.values(), "nobody", "pr_"],
            "policy": [*policies, "pol_", "nope"],
            "provider": ["github", "docs", "nope", "GitHub"],
            "workspace": ["fuzz", "other", "nope", "Fuzz", "../fuzz", "a" * 65],
            "config": [*known_keys(), "store", "x.y", "runtime.nope"],
            "file": ["provider.json", "archive.tar.gz", "exists.txt", "missing.json", ".", "out"],
            "tool": ["read_doc", "write_doc", "nope"],
            "backup": ["archive.tar.gz", "missing.tar.gz", "exists.txt", "."],
            "config-value": ["5", "DEBUG", "0x_", "!!bool maybe", "${X}", "[1]", "null", "1e999"],
            "services": ["runtime", "postgres", "x"],
        }
        cases = root / "cases"
        cases.mkdir()
        yield Template(root, cases, world, pools, command_specs(), tally)


# ---- command lines ------------------------------------------------------------------------
SCOPES = [READ, WRITE, COMMENT, REPOS, ISSUES, DOCS_READ, FILES, "provider:github:resource:*"]
DURATIONS = ["30m", "1h", "0", "-5m", "1x", "999999999999w", "90s", "1d", "1.5h", ""]
VALUES: dict[str, list[str]] = {
    "--resource": SCOPES,
    "--action": SCOPES,
    "--ttl": DURATIONS,
    "--max-validity": DURATIONS,
    "--since": DURATIONS,
    "--starts-in": DURATIONS,
    "--delegation-depth": ["0", "1", "-1", "99999999999999999999", "x"],
    "--limit": ["0", "1", "-1", "99999999999999999999", "x"],
    "--intent": ['{"a":1}', "NaN", "[", '{"a":1,"a":2}', json.dumps(BOUND_INTENT), "1e999"],
    "--format": ["json", "csv", "xml"],
    "--output": ["out.json", "sub/out.json", "out.tar.gz", ".", "exists.txt"],
    "-o": ["out.json", "exists.txt"],
    "--lock-key-env": [LOCK_ENV, "CARACAL_FUZZ_UNSET", "SHORT_LOCK"],
    "--credential-env": [CRED_ENV, "CARACAL_FUZZ_UNSET"],
    "--store-url": ["sqlite:///x.db", "postgresql+psycopg://u@127.0.0.1:1/db", "mysql://x", "x"],
    "--base-url": [CLOSED_URL, "http://[", "ftp://x", "https://u:p@h", "http://127.0.0.1:9/a"],
    "--kind": ["human", "orchestrator", "worker", "service", "god"],
    "--name": ["bob", "alice", "Bad Name", "x" * 200],
    "--type": ["validation.allowed", "mandate.issued", "x"],
    "--server": ["docs", "github", "nope"],
    "--auth": ["none", "bearer", "basic", "api-key", "header", "x"],
    "--header-name": ["X-Token", "X Token"],
    "--health-path": ["/", "x", "/a b"],
    "--service-type": ["http", "mcp", "x y"],
    "--email": ["a@b.c", "x"],
    "--reason": ["lost", ""],
    "--status": ["active", "revoked", "x"],
    "--timeout": ["1", "0", "-1"],
    "--tail": ["1", "x"],
    "--as": ["restored", "fuzz", "../x", "Bad"],
    "--command": ["principal list", "sh", "exit", "mandate list --json", "help mandate"],
    "-c": ["principal list", "ls; sh", "workspace list"],
    "--port": ["0", "99999", "x"],
}


@dataclass(frozen=True)
class Spec:
    """One command, as click describes it: its arguments and options."""

    path: tuple[str, ...]
    arguments: tuple[str, ...]
    options: tuple[tuple[str, bool, bool], ...]  # (name, takes a value, required)


def command_specs() -> list[Spec]:
    """Every runnable command of the real tree, minus those left out (see the docstring)."""
    import typer.main

    from caracal.cli.main import app

    found: list[Spec] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None) or {}
        for name, child in children.items():
            if not child.hidden and not (not path and name in EXCLUDED):
                walk(child, (*path, name))
        if children:
            return
        arguments = tuple(p.name for p in command.params if p.param_type_name == "argument")
        options = tuple(
            (p.opts[0], not p.is_flag and not p.count, bool(p.required))
            for p in command.params
            if p.param_type_name == "option" and "--help" not in p.opts
        )
        found.append(Spec(path, arguments, options))

    walk(typer.main.get_command(app), ())
    return found


ARGUMENT_POOLS = {
    "principal": "principal",
    "policy_id": "policy",
    "mandate_id": "mandate",
    "source_id": "mandate",
    "key": "config",
    "value": "config-value",
    "file": "file",
    "archive": "backup",
    "services": "services",
}


def _positional(rng: random.Random, template: Template, spec: Spec, argument: str) -> str:
    pools = template.pools
    pool = ARGUMENT_POOLS.get(argument) or spec.path[0]  # `name`: of the group's kind
    if pool in pools and rng.random() < 0.9:
        return rng.choice(pools[pool])
    return rng.choice(rng.choice(list(pools.values())))


def _value(rng: random.Random, option: str, template: Template) -> str:
    if option in ("--workspace", "-w"):
        return rng.choice(template.pools["workspace"])
    if option in ("--issuer", "--subject", "--principal", "--caller"):
        return rng.choice(template.pools["principal"])
    if option in ("--mandate",):
        return rng.choice(template.pools["mandate"])
    if option == "--token":
        return rng.choice([*template.world.tokens, "x.y.z", ""])
    if option in VALUES and rng.random() < 0.9:
        return rng.choice(VALUES[option])
    return random_text(rng, 12)


def command_line(rng: random.Random, template: Template) -> list[str]:
    """A command of the tree with arguments and options that fit it, mostly well-formed."""
    argv: list[str] = []
    if rng.random() < 0.1:
        argv += rng.choice([["-w", "fuzz"], ["--workspace", "nope"], ["-w", "../x"], ["--version"]])
    spec = rng.choice(template.specs)
    argv += spec.path
    arguments = list(spec.arguments)
    if rng.random() < 0.1:
        arguments = arguments[: rng.randrange(len(arguments) + 1)] + ["extra"] * rng.randrange(2)
    argv += [_positional(rng, template, spec, a) for a in arguments]
    options = [o for o in spec.options if o[2] and rng.random() < 0.9]
    options += rng.sample(spec.options, min(len(spec.options), rng.randrange(5)))
    for name, takes_value, _ in options:
        argv.append(name)
        if takes_value:
            argv.append(_value(rng, name, template))
    if rng.random() < 0.05:
        argv.append(rng.choice(["--help", "--bogus", "--", "-"]))
    if rng.random() < 0.25:
        argv = _edited(rng, argv)
    return [_contained(word) for word in argv]


def _edited(rng: random.Random, argv: list[str]) -> list[str]:
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["drop", "duplicate", "swap", "change", "insert"])
        if not argv:
            argv.append(random_text(rng, 10))
            continue
        at = rng.randrange(len(argv))
        if op == "drop":
            del argv[at]
        elif op == "duplicate":
            argv.insert(at, argv[at])
        elif op == "swap":
            other = rng.randrange(len(argv))
            argv[at], argv[other] = argv[other], argv[at]
        elif op == "change":
            argv[at] = mutate_text(rng, argv[at], max_ops=2)
        else:
            argv.insert(at, random_text(rng, 10))
    return argv


def _contained(word: str) -> str:
    """Keep path-like words inside the case folder (the fuzzer runs as whatever user runs the
    tests, possibly root)."""
    word = word.replace("..", "._")
    return "./" + word.lstrip("/~") if word.startswith(("/", "~")) else word


# ---- running one case ---------------------------------------------------------------------
class _Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def run_case(template: Template, argv: list[str], stdin: str) -> tuple[int, str, str]:
    template.counter += 1
    case = template.cases / str(template.counter)
    shutil.copytree(template.root / "home", case / "home")
    shutil.copytree(template.root / "work", case / "work")
    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.get("CARACAL_HOME"), os.getcwd(), sys.stdin
    os.environ["CARACAL_HOME"] = str(case / "home")
    os.chdir(case / "work")
    sys.stdin = _Stdin(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(list(argv))
    finally:
        os.environ["CARACAL_HOME"] = saved[0] or ""
        os.chdir(saved[1])
        sys.stdin = saved[2]
        shutil.rmtree(case, ignore_errors=True)
    return code, out.getvalue(), err.getvalue()


STDINS = ["", "y\n", "yes\n", "ghp_secret\n", "principal list\nexit\n", "ENC[x]\n"]


def check_cli(template: Template, argv: list[str], stdin: str) -> None:
    with template.tally.case():
        code, _, err = run_case(template, argv, stdin)
    template.tally.saw(f"exit {code}")
    assert code in EXIT_CODES, (argv, code, err)
    for marker in ("Traceback", "--- Logging error ---", "internal error"):
        assert marker not in err, (argv, code, err)


# Found by this fuzzer (or while writing it), kept: (argv, stdin).
@example(
    case=(["mandate", "validate", "--token", "x", "--action", "\udcff", "--resource", "r"], "")
)
@example(case=(["principal", "show", "\udcff"], ""))
@example(case=(["config", "encrypt"], "secret\udcff\n"))
@example(case=(["config", "set", "runtime.redis_url", "--stdin"], "redis://\udcff\n"))
@example(case=(["config", "set", "runtime.port", "0x_"], ""))
@example(case=(["config", "set", "runtime.port", "!!bool maybe"], ""))
@example(case=(["ledger", "export", "--format", "csv", "--output", "."], ""))
@example(case=(["provider", "test", "docs", "--timeout", "-1"], ""))
@example(case=(["provider", "test", "docs", "--timeout", "nan"], ""))
@example(case=(["mandate", "issue", "--issuer", "alice", "--subject", "orch", "--ttl", "30m",
                "--action", READ, "--resource", REPOS, "--intent", "1e999"], ""))  # fmt: skip
@example(case=(["mandate", "validate", "--token", "x.y.z", "--action", READ,
                "--resource", REPOS, "--intent", '{"a": -1e400}'], ""))  # fmt: skip
@given(case=rngs)
@fuzz_settings(short=10_000)
def test_random_command_lines_end_with_a_documented_exit_code(
    template: Template, case: random.Random | tuple[list[str], str]
) -> None:
    if isinstance(case, random.Random):
        argv = command_line(case, template)
        stdin = case.choice(STDINS) if case.random() < 0.8 else random_text(case, 40)
    else:
        argv, stdin = case
    check_cli(template, argv, stdin)
