"""Host launcher commands: `caracal up | down | reset | purge | logs | status | doctor | cli`.
They manage containers and attach terminals; they never touch a workspace store."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from caracal.cli.common import (
    confirm,
    echo,
    emit_json,
    interactive,
    json_error,
    note,
    table,
    with_workspace_option,
)
from caracal.core.errors import RefusedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from caracal.launcher.stack import Launcher, ServiceStatus
    from caracal.launcher.watch import UpWatcher

ComposeFile = Annotated[
    Path | None,
    typer.Option(
        "--compose-file",
        metavar="FILE",
        help="The stack file (default: $CARACAL_DOCKER_COMPOSE_FILE, else the one Caracal "
        "ships: the checkout's, or the installed package's).",
    ),
]


def compose_path(option: Path | None) -> Path:
    if option is not None:
        return option.resolve()
    if os.environ.get("CARACAL_DOCKER_COMPOSE_FILE"):
        return Path(os.environ["CARACAL_DOCKER_COMPOSE_FILE"]).resolve()
    from caracal.launcher.distribution import default_compose_file

    return default_compose_file()


def launcher(
    compose_file: Path | None,
    client: Any = None,
    *,
    say: Callable[[str], None] = note,
    watch: UpWatcher | None = None,
) -> Launcher:
    from caracal.launcher.compose import load
    from caracal.launcher.engine import connect
    from caracal.launcher.stack import Launcher
    from caracal.launcher.state import StackState

    client = client or connect()
    path = compose_path(compose_file)
    project = os.environ.get("CARACAL_PROJECT_NAME")
    first = load(path, project=project)
    state = StackState.for_project(first.project)
    env = {**state.environment(), **os.environ}
    return Launcher(load(path, env, project=project), client, state, say=say, watch=watch)


def _show(statuses: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        emit_json([s.to_dict() for s in statuses])
        return
    table(
        ["service", "state", "health", "ports"],
        [[s.service, s.state, s.health, ", ".join(s.ports)] for s in statuses],
    )


def up(
    ctx: typer.Context,
    build: Annotated[
        bool, typer.Option("--build", help="Rebuild the runtime image first.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for health.")
    ] = 180,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the services' status as JSON only.")
    ] = False,
    compose_file: ComposeFile = None,
) -> None:
    """Start the container stack and wait until every service is healthy. At a terminal a
    progress line shows the phase, the image build's step and the health waits."""
    from caracal.cli.progress import wanted
    from caracal.cli.up_progress import up_display

    with up_display(wanted(ctx, as_json)) as (watch, say):
        if as_json:  # stdout is the JSON, stderr only ever an error object

            def say(_: str) -> None:
                return None

        stack = launcher(compose_file, say=say, watch=watch)
        say(f"Starting stack {stack.project} from {stack.stack.path}")
        statuses = stack.up(build=build, timeout=timeout)
    _show(statuses, as_json=as_json)


def down(compose_file: ComposeFile = None) -> None:
    """Stop and remove the stack's containers; data volumes are kept."""
    removed = launcher(compose_file).down()
    echo(f"Removed {len(removed)} item(s); volumes kept." if removed else "Nothing was running.")


def reset(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", "--force", help="Do not ask for confirmation.")
    ] = False,
    compose_file: ComposeFile = None,
) -> None:
    """Remove the stack's containers AND its data volumes (every workspace in the stack)."""
    stack = launcher(compose_file)
    confirm(f"Delete every container and data volume of stack {stack.project}?", yes=yes)
    removed = stack.down(volumes=True)
    echo(f"Removed {len(removed)} item(s), data volumes included.")


def purge(
    force: Annotated[
        bool,
        typer.Option("--yes", "-y", "--force", help="Do not ask; required without a terminal."),
    ] = False,
    compose_file: ComposeFile = None,
) -> None:
    """Remove everything labelled as this stack: containers, volumes, networks, the images it
    built, and its local state (secrets). Nothing else, whatever its name."""
    stack = launcher(compose_file)
    if not force:
        if not interactive():
            raise RefusedError(
                "purge deletes all stack data; refusing without a terminal. Pass --yes (or --force)."
            )
        try:
            answer = typer.prompt(
                f"This deletes every container, volume, network and built image of stack "
                f"{stack.project}, and its secrets. Type purge to confirm",
                default="",
                show_default=False,
            )
        except (typer.Abort, EOFError):
            raise RefusedError("No answer was given; nothing was removed.") from None
        if answer.strip() != "purge":
            raise RefusedError("Cancelled; nothing was removed.")
    removed = stack.purge()
    for item in removed:
        echo(f"removed {item}")
    echo(
        f"Purged stack {stack.project}: {len(removed)} item(s). Embedded workspaces are untouched."
    )


def logs(
    services: Annotated[list[str] | None, typer.Argument(metavar="[SERVICE]...")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", min=0, help="Only the last N lines.")
    ] = None,
    compose_file: ComposeFile = None,
) -> None:
    """Show the stack's logs (every service, or those named)."""
    from caracal.launcher.logs import show_logs

    with contextlib.suppress(KeyboardInterrupt):
        show_logs(launcher(compose_file), services or [], follow=follow, tail=tail)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    compose_file: ComposeFile = None,
) -> None:
    """Each service of the stack: state, health and published ports. Exits 8 when a service
    the stack needs is missing, stopped or unhealthy (`flow` and `cli` run on demand)."""
    from caracal.cli.exit_codes import ExitCode

    statuses = launcher(compose_file).status()
    _show(statuses, as_json)
    problems = [s.problem for s in statuses if s.problem]
    if problems:
        message = f"{'; '.join(problems)}; see `caracal logs`, then `caracal up`."
        if as_json:
            json_error(ExitCode.UNAVAILABLE, "unavailable", message)
        else:
            print(f"caracal: {message}", file=sys.stderr)
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    compose_file: ComposeFile = None,
) -> None:
    """Check that this host can run the stack; each problem comes with a next step."""
    from caracal.cli.exit_codes import ExitCode
    from caracal.core.errors import CaracalError
    from caracal.launcher.doctor import engine_finding, examine, stack_file_finding
    from caracal.launcher.engine import connect

    try:
        client = connect()
    except CaracalError as exc:
        findings = [engine_finding(exc)]
    else:
        try:
            stack = launcher(compose_file, client)
        except CaracalError as exc:  # the engine answers: the problem is the stack file
            findings = [stack_file_finding(exc)]
        else:
            findings = examine(stack)
    if as_json:
        emit_json([f.__dict__ for f in findings])
    else:
        table(
            ["check", "ok", "detail", "next step"],
            [[f.check, "yes" if f.ok else "NO", f.detail, f.next_step] for f in findings],
        )
    if not all(f.ok for f in findings):
        if as_json:
            failed = "; ".join(f"{f.check}: {f.detail}" for f in findings if not f.ok)
            json_error(ExitCode.UNAVAILABLE, "unavailable", failed)
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


def cli(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="Run here, without Docker.")] = False,
    compose_file: ComposeFile = None,
) -> None:
    """The restricted Caracal shell in the runtime container; with arguments, run that one
    command there and return its exit code. Files under $CARACAL_HOME/host-io are seen
    inside as /caracal-host-io."""
    args = with_workspace_option(ctx, list(ctx.args))
    if local:
        from caracal.cli.main import run

        code = run(["shell"] if not args else args[1:] if args[0] == "caracal" else args)
        raise typer.Exit(code)
    from caracal.launcher.attach import run_cli

    stack = launcher(compose_file)
    sys.stdout.flush()
    raise typer.Exit(run_cli(stack, args))
