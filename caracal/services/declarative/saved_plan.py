"""`caracal plan --out PLAN`: the reviewed plan, kept so that `apply --plan-file PLAN` applies
exactly that, or nothing when the file or the workspace changed since."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.errors import ConflictError, NotFoundError, ValidationError
from caracal.home.atomic import atomic_write_text
from caracal.services.declarative.service import PlanReport

PLAN_FORMAT = "caracal-plan/1"


def plan_document(report: PlanReport, workspace: str) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "workspace": workspace,
        "file_sha256": report.file_sha256,
        "state_sha256": report.state_sha256,
        "summary": report.plan.summary(),
        "changes": [c.to_dict() for c in report.plan.changes],
        "problems": list(report.plan.problems),
    }


def save_plan(report: PlanReport, workspace: str, path: Path, *, overwrite: bool) -> None:
    text = json.dumps(plan_document(report, workspace), indent=2) + "\n"
    atomic_write_text(path, text, mode=0o644, overwrite=overwrite)


def expected_state(path: Path, workspace: str, file_sha256: str) -> str:
    """The state digest a saved plan was computed against, once the plan is known to be for
    this workspace and this very file."""
    try:
        data = strict_loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotFoundError(f"Cannot read {path}: {exc.strerror}; check the path.") from None
    except (StrictJSONError, UnicodeDecodeError):
        raise ValidationError(
            f"{path} is not a saved plan; make one with `caracal plan -f FILE --out {path}`."
        ) from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise ValidationError(
            f"{path} is not a saved plan; make one with `caracal plan -f FILE --out {path}`."
        )
    if data.get("workspace") != workspace:
        raise ConflictError(
            f"{path} was planned for workspace {data.get('workspace')!r}, not {workspace!r}; "
            "run `caracal plan` on this workspace."
        )
    if data.get("file_sha256") != file_sha256:
        raise ConflictError(
            f"The file changed since {path} was planned; run `caracal plan` again and review it."
        )
    state = data.get("state_sha256")
    if not isinstance(state, str):
        raise ValidationError(f"{path} has no state digest; run `caracal plan` again.")
    return state
