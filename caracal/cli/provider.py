"""`caracal provider ...`: the systems agents act on and their scope catalogs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caracal.cli import restricted
from caracal.cli.common import (
    confirm,
    echo,
    emit_json,
    json_error,
    note,
    open_workspace,
    read_secret,
    table,
)
from caracal.cli.exit_codes import ExitCode

app = typer.Typer(
    rich_markup_mode=None,
    help="Register and test providers; list their scopes.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
ServiceType = Annotated[
    str | None, typer.Option("--service-type", help="Kind of service, e.g. http or mcp.")
]
Auth = Annotated[
    str | None,
    typer.Option(
        "--auth", help="none | api-key | api-key-query | bearer | basic | header (default none)."
    ),
]
CredentialEnv = Annotated[
    str | None,
    typer.Option("--credential-env", metavar="VAR", help="Read the credential from this variable."),
]
CredentialStdin = Annotated[
    bool, typer.Option("--credential-stdin", help="Read the credential from stdin.")
]
HeaderName = Annotated[
    str | None,
    typer.Option(
        "--header-name",
        help="Header carrying the credential (api-key-query: the query parameter).",
    ),
]
HealthPath = Annotated[
    str | None, typer.Option("--health-path", help="Path probed by `provider test` (default /).")
]
Resources = Annotated[
    list[str] | None,
    typer.Option("--resource", metavar="ID[=DESCRIPTION]", help="A resource (repeatable)."),
]
Actions = Annotated[
    list[str] | None,
    typer.Option(
        "--action",
        metavar="RESOURCE:ACTION[:METHOD[:PATH_PREFIX]]",
        help="An action on a resource (repeatable).",
    ),
]


def _catalog(resources: list[str] | None, actions: list[str] | None):  # type: ignore[no-untyped-def]
    from caracal.core.providers import parse_action_option, parse_resource_option

    return (
        tuple(parse_resource_option(r) for r in resources or []),
        tuple(parse_action_option(a) for a in actions or []),
    )


def _print_view(view, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        emit_json(view.to_dict())
        return
    spec = view.spec
    echo(f"name:         {spec.name}")
    echo(f"mode:         {spec.mode}")
    echo(f"base url:     {spec.base_url}")
    echo(f"service type: {spec.service_type}")
    echo(
        f"auth:         {spec.auth}"
        + (f" ({spec.auth_header_name()})" if spec.auth != "none" else "")
    )
    echo(f"credential:   {view.credential}")
    echo(f"health path:  {spec.health_path}")
    for resource in spec.resources:
        suffix = f" - {resource.description}" if resource.description else ""
        echo(f"resource:     {resource.resource_id}{suffix}")
        for action in spec.actions:
            if action.resource_id == resource.resource_id:
                echo(f"  action:     {action.action_id} {action.method} {action.path_prefix}")


@app.command()
def add(
    ctx: typer.Context,
    name: str,
    base_url: Annotated[str, typer.Option("--base-url", help="http(s)://host[:port][/path]")],
    service_type: ServiceType = None,
    auth: Auth = None,
    credential_env: CredentialEnv = None,
    credential_stdin: CredentialStdin = False,
    header_name: HeaderName = None,
    health_path: HealthPath = None,
    resource: Resources = None,
    action: Actions = None,
    as_json: JsonOption = False,
) -> None:
    """Register a provider: scoped with --resource/--action, passthrough without."""
    from caracal.core.providers import ProviderSpec

    credential = read_secret(credential_env, credential_stdin, "credential")
    resources, actions = _catalog(resource, action)
    spec = ProviderSpec(
        name=name,
        base_url=base_url,
        service_type=service_type or "http",
        auth=auth or "none",
        header_name=header_name,
        health_path=health_path or "/",
        resources=resources,
        actions=actions,
    )
    with open_workspace(ctx) as caracal:
        view = caracal.providers.add(spec, credential)
    if as_json:
        emit_json(view.to_dict())
    else:
        echo(f"Added provider {name} ({view.spec.mode}). Next: caracal provider test {name}")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List providers with mode, auth and credential status."""
    with open_workspace(ctx) as caracal:
        views = caracal.providers.all()
    if as_json:
        emit_json([v.to_dict() for v in views])
        return
    table(
        ["name", "mode", "type", "auth", "credential", "base url"],
        [
            [
                v.spec.name,
                v.spec.mode,
                v.spec.service_type,
                v.spec.auth,
                v.credential,
                v.spec.base_url,
            ]
            for v in views
        ],
        empty="No providers yet; add one with `caracal provider add NAME --base-url URL`.",
    )


@app.command()
def show(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """Show one provider and its catalog."""
    with open_workspace(ctx) as caracal:
        view = caracal.providers.get(name)
    _print_view(view, as_json)


@app.command()
def update(
    ctx: typer.Context,
    name: str,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    service_type: ServiceType = None,
    auth: Auth = None,
    credential_env: CredentialEnv = None,
    credential_stdin: CredentialStdin = False,
    clear_credential: Annotated[
        bool, typer.Option("--clear-credential", help="Remove the stored credential.")
    ] = False,
    header_name: HeaderName = None,
    health_path: HealthPath = None,
    resource: Resources = None,
    action: Actions = None,
    as_json: JsonOption = False,
) -> None:
    """Change a provider; --resource/--action, when given, replace its whole catalog."""
    credential = read_secret(credential_env, credential_stdin, "credential")
    changes: dict[str, object] = {
        "base_url": base_url,
        "service_type": service_type,
        "auth": auth,
        "header_name": header_name,
        "health_path": health_path,
    }
    if resource or action:
        changes["resources"], changes["actions"] = _catalog(resource, action)
    with open_workspace(ctx) as caracal:
        view = caracal.providers.update(
            name, credential=credential, clear_credential=clear_credential, **changes
        )
    if as_json:
        emit_json(view.to_dict())
    else:
        echo(f"Updated provider {name}.")


@app.command()
def remove(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a provider and its stored credential."""
    with open_workspace(ctx) as caracal:
        caracal.providers.get(name)
        confirm(f"Remove provider {name!r} and its credential?", yes=yes)
        caracal.providers.remove(name)
    note(f"Removed provider {name}.")


@app.command()
def test(
    ctx: typer.Context,
    name: str,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 5.0,
    as_json: JsonOption = False,
) -> None:
    """Probe the health path with the auth header; exit 0 only when healthy."""
    with open_workspace(ctx) as caracal:
        result = caracal.providers.test(name, timeout)
    if as_json:
        emit_json({"provider": name, **result.to_dict()})
    else:
        state = "healthy" if result.healthy else "unhealthy"
        echo(f"{name}: {state} - {result.detail} ({result.latency_ms:.0f} ms)")
    if not result.healthy:
        if as_json:
            json_error(ExitCode.UNAVAILABLE, "unavailable", f"{name}: unhealthy - {result.detail}")
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


@app.command()
def scopes(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The canonical scope catalog policies and mandates refer to."""
    with open_workspace(ctx) as caracal:
        listed = caracal.providers.scopes(provider)
    if as_json:
        emit_json(listed)
        return
    if not listed:
        echo("No scopes yet; add a provider with `caracal provider add`.")
    for scope in listed:
        echo(scope)


@app.command()
def export(
    ctx: typer.Context,
    name: str,
    file: Path,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the file if it exists (atomically).")
    ] = False,
) -> None:
    """Write a provider definition to a JSON file (credentials are never exported)."""
    file = restricted.output_file(file)
    with open_workspace(ctx) as caracal:
        caracal.providers.export(name, file, overwrite=force)
    note(f"Exported provider {name} to {file} (without credentials).")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Path,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an existing provider.")
    ] = False,
    credential_env: CredentialEnv = None,
    credential_stdin: CredentialStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Register a provider from an exported JSON file."""
    credential = read_secret(credential_env, credential_stdin, "credential")
    file = restricted.input_file(file)
    with open_workspace(ctx) as caracal:
        view = caracal.providers.import_file(file, replace=replace, credential=credential)
    if as_json:
        emit_json(view.to_dict())
        return
    echo(f"Imported provider {view.spec.name} ({view.spec.mode}).")
    if view.credential == "missing":
        note(
            f"warning: {view.spec.name} needs a credential; set it with "
            f"`caracal provider update {view.spec.name} --credential-env VAR`."
        )
