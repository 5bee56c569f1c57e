"""export, plan and apply run in the restricted shell (the container stack's way in), with
their files confined to the host I/O folder like every other command's."""

from __future__ import annotations

from pathlib import Path

from caracal.cli.exit_codes import ExitCode
from tests.support.cli import Result, run_cli


def shell(line: str) -> Result:
    return run_cli("shell", "-c", line)


def test_state_files_round_trip_inside_the_host_io_folder_only(home: Path) -> None:
    assert run_cli("workspace", "create", "demo").code == 0
    assert shell("principal register --kind human --name alice").code == 0
    folder = home / "host-io"
    exported = shell("export --output state.yaml")
    assert exported.code == 0, exported
    text = (folder / "state.yaml").read_text()
    (folder / "state.yaml").write_text(
        text.replace("principals:\n", "principals:\n  - name: bob\n    kind: worker\n")
    )
    assert "+ create principal bob" in shell("plan -f state.yaml --out plan.json").stdout
    applied = shell("apply -f state.yaml --plan-file plan.json")
    assert applied.code == 0, applied
    assert "bob" in shell("principal list").stdout
    victim = home / "outside.yaml"
    victim.write_text(text)
    for line in (
        f"plan -f {victim}",
        f"apply -f {victim} --yes",
        "export --output ../outside.yaml --force",
        "plan -f state.yaml --out ../plan.json",
    ):
        result = shell(line)
        assert result.code == ExitCode.INVALID, (line, result)
        assert "outside the host I/O folder" in result.stderr, (line, result)
    assert victim.read_text() == text
    assert not (home / "plan.json").exists()
