"""The state file is checked whole: every problem at once with its position, unknown keys and
secrets refused; the JSON Schema says the same as the model."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from caracal.cli.exit_codes import ExitCode
from caracal.core.workspace_state import WorkspaceState, json_schema
from caracal.services.declarative.source import FileProblems, parse_text
from tests.declarative.conftest import cli, ok, write
from tests.support.cli import run_cli

FIVE_PROBLEMS = """\
version: 1
providers:
  - name: docs
    base_url: ftp://docs.example.com
  - name: wiki
    base_url: https://wiki.example.com
    colour: blue
principals:
  - name: alice
    kind: robot
policies:
  - principal: bob
    max_validity: forever
    resources: []
    actions: []
"""

GOOD = """\
version: 1
providers:
  - name: github
    base_url: https://api.github.com
    auth: bearer
    credential_env: GITHUB_TOKEN
    resources: [{id: repos}]
    actions: [{resource: repos, id: read}]
principals:
  - {name: alice, kind: human, email: alice@example.com}
policies:
  - principal: alice
    max_validity: 1h
    resources: ["provider:github:resource:*"]
    actions: ["provider:github:action:read"]
"""


def problems_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(FileProblems) as caught:
        parse_text(text, "state.yaml")
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def test_five_problems_are_reported_at_once_with_positions() -> None:
    found = problems_of(FIVE_PROBLEMS)
    assert [(line, column) for line, column, _ in found] == [
        (3, 5),  # the provider entry: its base URL is not http(s)
        (7, 5),  # unknown key
        (10, 5),  # unknown principal kind
        (12, 5),  # a policy for a principal the file does not declare
        (13, 5),  # not a duration
    ]
    messages = [message for _, _, message in found]
    assert "Invalid base URL" in messages[0]
    assert "unknown key 'colour'" in messages[1]
    assert "'human'" in messages[2]
    assert "'bob' is not in the file's principals" in messages[3]
    assert "Invalid duration 'forever'" in messages[4]


def test_the_cli_names_file_line_and_column_and_changes_nothing(home: Path, tmp_path: Path) -> None:
    ok(run_cli("workspace", "create", "w"))
    path = write(tmp_path / "state.yaml", FIVE_PROBLEMS)
    result = cli("w", "plan", "-f", str(path))
    assert result.code == ExitCode.INVALID
    lines = result.stderr.splitlines()
    assert lines[0] == (f"error: {path} has 5 problems; fix them and run `caracal plan` again:")
    assert lines[1].startswith(f"{path}:3:5: ")
    assert len(lines) == 6
    result = cli("w", "apply", "-f", str(path), "--yes")
    assert result.code == ExitCode.INVALID
    assert ok(cli("w", "principal", "list", "--json")).json() == []


@pytest.mark.parametrize(
    ("snippet", "where", "expected"),
    [
        ("    credential: hunter2-and-more\n", (9, 5), "'credential' would hold a secret"),
        ("    token: abc\n", (9, 5), "'token' would hold a secret"),
        (
            "    health_path: /ghp_0123456789abcdef0123\n",
            (9, 5),
            "looks like a secret",
        ),
    ],
)
def test_secrets_are_refused(snippet: str, where: tuple[int, int], expected: str) -> None:
    lines = GOOD.splitlines(keepends=True)
    text = "".join([*lines[:8], snippet, *lines[8:]])
    found = problems_of(text)
    assert any((line, column) == where and expected in msg for line, column, msg in found), found


def test_a_credential_in_the_url_or_in_place_of_a_variable_name_is_refused() -> None:
    text = GOOD.replace("https://api.github.com", "https://user:pa55word@api.github.com")
    text = text.replace("credential_env: GITHUB_TOKEN", "credential_env: Bearer abcdefghijkl")
    found = problems_of(text)
    assert (4, 5) in [(line, column) for line, column, _ in found]  # the URL
    assert any(line == 6 and "looks like a secret" in msg for line, _, msg in found)
    assert any(line == 6 and "environment variable" in msg for line, _, msg in found)


def test_syntax_errors_and_aliases_have_positions() -> None:
    assert problems_of("version: 1\nproviders: [\n")[0][:2] == (3, 1)
    aliased = "version: 1\nprincipals:\n  - &a {name: x, kind: human}\n  - *a\n"
    assert "aliases are not allowed" in problems_of(aliased)[0][2]


def test_a_good_file_parses_in_any_order() -> None:
    state = parse_text(GOOD, "state.yaml").state
    assert state.providers[0].credential_env == "GITHUB_TOKEN"
    assert state.policies[0].max_validity == "1h"


def test_the_schema_accepts_what_the_model_accepts_and_refuses_unknown_keys(
    home: Path,
) -> None:
    ok(run_cli("workspace", "create", "w"))
    printed = ok(cli("w", "export", "--schema")).json()
    assert printed == json_schema()
    validator = jsonschema.Draft202012Validator(printed)
    validator.check_schema(printed)
    good = yaml.safe_load(GOOD)
    validator.validate(good)
    WorkspaceState.model_validate(good)
    for bad in (
        {**good, "mandates": []},
        {**good, "principals": [{"name": "x", "kind": "robot"}]},
        {**good, "providers": [{**good["providers"][0], "credential": "x"}]},
    ):
        assert list(validator.iter_errors(bad)), json.dumps(bad)
    # What export writes is valid against the schema too.
    validator.validate(yaml.safe_load(ok(cli("w", "export")).stdout))


def test_settings_are_limited_to_those_a_file_may_carry() -> None:
    text = GOOD + (
        "settings:\n"
        "  validation.clock_leeway_seconds: 60\n"
        "  store.url: postgresql://db/caracal\n"
        "  colour: blue\n"
    )
    found = problems_of(text)
    assert [(line, column) for line, column, _ in found] == [(18, 3), (19, 3)]
    assert "belongs to the host" in found[0][2]
    assert "unknown setting 'colour'" in found[1][2]
