"""Restoring an archive from Flow, shared by Backups and Workspaces: pick a file anywhere
(or take the selected row), the restore dialog onboarding's import also uses, an outcome
worded with Flow's keys, and the offer to switch to the new workspace."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.markup import escape

from caracal.flow.next_steps import restore_notices, rotate_keys, where

if TYPE_CHECKING:
    from caracal.flow.screens.base import AreaScreen


def start_folder() -> Path:
    """Where the picker opens: the folder shared with the host inside the stack, else the
    folder Flow was started from."""
    from caracal.home.host_io import host_io_folder

    if os.environ.get("CARACAL_RUNTIME_IN_CONTAINER") == "1" and host_io_folder().is_dir():
        return host_io_folder()
    return Path.cwd()


def pick_and_restore(screen: AreaScreen, title: str, done: Callable[[str, Any], None]) -> None:
    """Pick an archive file, then restore it into a new workspace; `done(file, result)`."""
    from caracal.flow.modals.archive_picker import PickArchiveModal, archive_row

    def picked(path: Path | None) -> None:
        if path is not None:
            restore_row(screen, archive_row(path), done)

    screen.app.push_screen(PickArchiveModal(title, start_folder()), picked)


def restore_row(screen: AreaScreen, row: dict[str, Any], done: Callable[[str, Any], None]) -> None:
    from caracal.flow.modals.backup_restore import RestoreArchiveModal

    def restored(result: Any) -> None:
        if result is not None:
            done(str(row["file"]), result)

    screen.app.push_screen(RestoreArchiveModal(row), restored)


def outcome(file: str, result: Any) -> str:
    """What a restore did, as markup, its notices naming Flow's keys rather than commands."""
    return (
        f"[green b]Restored[/] {escape(file)} into workspace {result.name} "
        f"({result.store}, {result.seconds:.2f}s)"
        + "".join(f"\n{escape(notice)}" for notice in restore_notices(result.notices))
    )


def offer_switch(screen: AreaScreen, result: Any) -> None:
    """Ask to switch to the restored workspace; without secrets in the archive, the switch
    lands on Principals, where the keys are rotated."""
    from caracal.flow.modals.confirm import ConfirmModal
    from caracal.flow.tasks import run_in_background

    context, flow, name = screen.context, screen.flow, result.name
    rotate = not result.secrets_included
    then = f" Then {where('principals')} opens: {rotate_keys()}." if rotate else ""

    def switched(_: Any) -> None:
        flow.workspace_changed()
        if rotate:
            flow.goto("principals")
            flow.notify(f"Restored without secrets: {rotate_keys()}.", timeout=15)

    def answered(yes: bool | None) -> None:
        if yes:
            run_in_background(
                screen, lambda: context.switch(name), done=switched, description="switch workspace"
            )

    screen.app.push_screen(
        ConfirmModal(
            f"Restored into workspace {name}. Switch to it now?",
            "Flow then opens its config, logs, store and state; the current workspace "
            f"stays as it is.{then}",
            confirm_label="Switch",
        ),
        answered,
    )
