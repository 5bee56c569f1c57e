"""`caracal backup ...`: create, list, verify and restore whole-workspace archives."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from caracal.cli import restricted
from caracal.cli.common import echo, emit_json, json_error, note, open_workspace, table
from caracal.cli.exit_codes import ExitCode
from caracal.cli.progress import interruptible, steps, wanted
from caracal.core.errors import RefusedError, ValidationError

app = typer.Typer(
    rich_markup_mode=None, help="Back up, verify and restore workspaces.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
LockKeyEnv = Annotated[
    str | None,
    typer.Option(
        "--lock-key-env", metavar="VAR", help="Environment variable holding the lock key."
    ),
]


TrustKey = Annotated[
    list[str] | None,
    typer.Option(
        "--trust-key",
        metavar="FINGERPRINT",
        envvar="CARACAL_TRUST_KEY",
        help=(
            "Trust an archive signed by the ledger key with this fingerprint (sha256:…, as "
            "`backup create` prints it); repeatable. Needed for archives of workspaces this "
            "home does not have. Env: CARACAL_TRUST_KEY (space-separated)."
        ),
    ),
]
TrustArchiveKey = Annotated[
    bool,
    typer.Option(
        "--trust-archive-key",
        help="Accept whatever ledger key signed the archive, unchecked (recorded on restore).",
    ),
]


def _trusted(keys: list[str] | None) -> list[str]:
    return [k for value in keys or [] for k in value.split()]


def _lock_key_from_env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise ValidationError(f"Environment variable {var} is not set or empty.")
    return value


def _prompt_new_lock_key() -> str:
    if not sys.stdin.isatty():
        raise RefusedError(
            "--lock needs a terminal to ask for the key; use --lock-key-env VAR instead."
        )
    import getpass

    first = getpass.getpass("Lock key (at least 12 characters): ")
    if getpass.getpass("Repeat the lock key: ") != first:
        raise ValidationError("The two lock keys differ; nothing was written.")
    return first


def _existing_lock_key(var: str | None, archive: Path) -> str | None:
    if var:
        return _lock_key_from_env(var)
    from caracal.services.backup.envelope import locked

    if archive.is_file() and locked(archive) and sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"Lock key for {archive.name}: ")
    return None


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command()
def create(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Archive path (default: the workspace's backups/)."),
    ] = None,
    lock_key_env: LockKeyEnv = None,
    lock: Annotated[
        bool, typer.Option("--lock", help="Ask for a lock key at the terminal.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --output file if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Archive the whole workspace; with a lock key it includes secrets and is encrypted."""
    if output is not None:
        output = restricted.output_file(output)
    lock_key = (
        _lock_key_from_env(lock_key_env)
        if lock_key_env
        else (_prompt_new_lock_key() if lock else None)
    )
    with (
        interruptible("nothing was written (no archive, no temporary file)"),
        open_workspace(ctx) as caracal,
        steps(enabled=wanted(ctx, as_json)) as progress,
    ):
        result = caracal.backups.create(output, lock_key, overwrite=force, progress=progress)
    if as_json:
        emit_json(result.to_dict())
        return
    echo(str(result.path))
    kind = "locked, secrets included" if result.locked else "not locked, secrets omitted"
    note(
        f"Backup written: {_size(result.size)}, {kind}, {result.head_seq} ledger events ({result.seconds:.1f}s)."
    )
    note(
        f"Signed by this workspace's ledger key sha256:{result.signed_by}: restoring it "
        "elsewhere needs that fingerprint (--trust-key)."
    )


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Archives in the workspace's backups/ folder."""
    with open_workspace(ctx) as caracal:
        rows = caracal.backups.listing()
    if as_json:
        emit_json(rows)
        return
    table(
        ["file", "size", "modified", "locked"],
        [
            [r["file"], _size(r["size"]), r["modified"], "yes" if r["locked"] else "no"]
            for r in rows
        ],
        empty="No backups yet; create one with `caracal backup create`.",
    )


@app.command()
def verify(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE")],
    lock_key_env: LockKeyEnv = None,
    trust_key: TrustKey = None,
    trust_archive_key: TrustArchiveKey = False,
    as_json: JsonOption = False,
) -> None:
    """Check who signed the archive (a key pinned here, or one you trust), every hash, the
    ledger against its signed head and the tables against the ledger; exit 7 on any problem."""
    from caracal.services.backup.archive_check import verify_archive

    archive = restricted.input_file(archive)
    lock_key = _existing_lock_key(lock_key_env, archive)
    with (
        interruptible("the archive was not fully checked; nothing was written"),
        steps(enabled=wanted(ctx, as_json)) as progress,
    ):
        report = verify_archive(
            archive,
            lock_key,
            trust_keys=_trusted(trust_key),
            trust_archive_key=trust_archive_key,
            progress=progress,
        )
    if as_json:
        emit_json(report.to_dict())
    elif report.ok:
        echo(
            f"Archive intact: workspace {report.workspace}, {report.ledger_events} ledger events, "
            f"{'locked' if report.locked else 'not locked'}, created {report.created_at}; "
            f"signed by ledger key sha256:{report.signed_by} ({report.trust})."
        )
    else:
        note(f"Archive BROKEN: {report.problem}")
    if not report.ok:
        if as_json:
            json_error(ExitCode.INTEGRITY, "integrity", f"Archive BROKEN: {report.problem}")
        raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command()
def restore(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE")],
    name: Annotated[str, typer.Option("--as", metavar="NAME", help="The new workspace's name.")],
    lock_key_env: LockKeyEnv = None,
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store-url",
            help="Restore into PostgreSQL (default: $CARACAL_STORE_URL, else SQLite).",
        ),
    ] = None,
    trust_key: TrustKey = None,
    trust_archive_key: TrustArchiveKey = False,
    as_json: JsonOption = False,
) -> None:
    """Create workspace NAME from ARCHIVE (verified first; nothing is left on failure)."""
    from caracal.services.backup.restore import restore as run_restore
    from caracal.services.workspaces import WorkspaceManager

    archive = restricted.input_file(archive)
    restricted.no_store_location("--store-url", store_url)

    lock_key = _existing_lock_key(lock_key_env, archive)
    with (
        interruptible(f"nothing was written (no workspace {name})"),
        steps(enabled=wanted(ctx, as_json)) as progress,
    ):
        result = run_restore(
            WorkspaceManager(),
            archive,
            name,
            lock_key=lock_key,
            store_url=store_url,
            trust_keys=_trusted(trust_key),
            trust_archive_key=trust_archive_key,
            progress=progress,
        )
    if as_json:
        emit_json(result.to_dict())
        return
    echo(
        f"Restored workspace {result.name} ({result.store}). Switch to it with: caracal workspace use {result.name}"
    )
    for notice in result.notices:
        note(f"note: {notice}")
