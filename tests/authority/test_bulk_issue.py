"""`caracal mandate issue --from FILE`: one mandate per JSON line, outcomes in input order,
errors named by line, refusals in the ledger, chunks that each commit whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caracal.cli.exit_codes import ExitCode
from tests.authority.conftest import READ, REPOS, WRITE, World, ok
from tests.support.cli import run_cli


def _line(**fields: object) -> str:
    base: dict[str, object] = {
        "issuer": "alice",
        "subject": "orch",
        "resources": [REPOS],
        "actions": [READ],
        "ttl": "30m",
    }
    return json.dumps({**base, **fields})


def _rows(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_each_line_gets_its_outcome_in_order(world: World, tmp_path: Path) -> None:
    path = tmp_path / "mandates.jsonl"
    path.write_text(
        "\n".join(
            [
                _line(),  # 1 issued
                "# a comment, skipped",  # 2
                '{"issuer": "alice", "subject": "orch"}',  # 3 missing fields
                "not json",  # 4
                _line(ttl="2h"),  # 5 over the policy's 1h: denied, recorded
                "",  # 6 blank
                _line(subject="w1", actions=[READ, WRITE], delegation_depth=1),  # 7 issued
                _line(subject="nobody"),  # 8 unknown principal
                '{"issuer": "alice", "issuer": "orch"}',  # 9 duplicate key
            ]
        )
        + "\n"
    )
    result = run_cli("mandate", "issue", "--from", str(path), "--json")
    rows = _rows(result.stdout)
    assert [r["line"] for r in rows] == [1, 3, 4, 5, 7, 8, 9], rows
    issued = {r["line"]: r for r in rows if "token" in r}
    failed = {r["line"]: r for r in rows if "error" in r}
    assert sorted(issued) == [1, 7] and sorted(failed) == [3, 4, 5, 8, 9]
    assert failed[3]["message"] == "line 3: 'resources' is missing."
    assert failed[4]["kind"] == "invalid" and "strict JSON" in str(failed[4]["message"])
    assert failed[5]["error"] == "POLICY_VALIDITY_EXCEEDED" and failed[5]["kind"] == "denied"
    assert failed[8]["kind"] == "not_found" and "nobody" in str(failed[8]["message"])
    assert "duplicate" in str(failed[9]["message"]).lower()
    # Exit code and the one JSON error on stderr come from the first failed line.
    assert result.code == ExitCode.INVALID, result
    summary = json.loads(result.stderr)
    assert summary["exit_code"] == 5 and "issued 2 mandate(s); 5 line(s) failed" in str(
        summary["message"]
    )
    # What was issued validates; the refusal is in the ledger; the ledger holds together.
    assert ok(World.validate_token(str(issued[1]["token"]))).json()["allowed"]
    assert ok(World.validate_token(str(issued[7]["token"]), WRITE)).json()["allowed"]
    assert issued[7]["delegation_depth"] == 1
    events = ok(run_cli("ledger", "list", "--json", "--limit", "50")).json()
    refused = [e for e in events if e["type"] == "mandate.issue_refused"]
    assert [e["reason_code"] for e in refused] == ["POLICY_VALIDITY_EXCEEDED"], refused
    ok(run_cli("ledger", "verify"))


def test_plain_output_prints_ids_and_names_failed_lines(world: World, tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(_line() + "\n" + _line(actions=["provider:github:action:delete"]) + "\n")
    result = run_cli("mandate", "issue", "--from", str(path))
    assert result.code == ExitCode.INVALID, result
    [issued] = result.stdout.split()
    assert issued.startswith("mnd_")
    assert "error: line 2:" in result.stderr and "issued 1 mandate(s)" in result.stderr


def test_stdin_and_chunks_larger_than_one_transaction(world: World) -> None:
    lines = "".join(_line(subject=("orch", "w1", "w2")[i % 3]) + "\n" for i in range(1_203))
    result = run_cli("mandate", "issue", "--from", "-", "--json", input=lines)
    assert result.code == 0, result.stderr
    rows = _rows(result.stdout)
    assert [r["line"] for r in rows] == list(range(1, 1_204))
    assert len({r["id"] for r in rows}) == 1_203
    listed = ok(run_cli("mandate", "list", "--json", "--limit", "2000")).json()
    assert len(listed) == 1_203
    ok(run_cli("ledger", "verify"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--from", "-", "--issuer", "alice"), "--issuer cannot be combined"),
        (("--from", "-", "--delegation-depth", "2"), "--delegation-depth cannot be combined"),
        (("--issuer", "alice", "--subject", "orch", "--ttl", "1h"), "'--resource'"),
    ],
)
def test_from_and_single_options_do_not_mix(
    world: World, argv: tuple[str, ...], needle: str
) -> None:
    result = run_cli("mandate", "issue", *argv, input=_line() + "\n")
    assert result.code == ExitCode.USAGE and needle in result.stderr, result
    assert ok(run_cli("mandate", "list", "--json")).json() == []


def test_a_missing_file_is_one_clear_error(world: World, tmp_path: Path) -> None:
    result = run_cli("mandate", "issue", "--from", str(tmp_path / "none.jsonl"))
    assert result.code == ExitCode.UNAVAILABLE, result
    assert result.stderr.startswith("error: ") and "none.jsonl" in result.stderr
