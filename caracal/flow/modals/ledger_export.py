"""Export the ledger to a JSON or CSV file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Select

from caracal.flow.modals.operation import OperationModal
from caracal.flow.text import display_path


class ExportLedgerModal(OperationModal[Any]):
    TITLE = "Export the ledger"
    SUBMIT = "Export"
    CANCEL_QUESTION = "Cancel the export? Nothing will be written."
    CANCEL_DETAILS = "The file is not created (an existing one is left as it was)."

    def compose_fields(self) -> ComposeResult:
        yield self.field("Format")
        yield Select(
            [("JSON", "json"), ("CSV", "csv")], value="json", allow_blank=False, id="format"
        )
        yield self.field("File")
        default = display_path(self.flow.context.caracal.paths.root / "ledger-export.json")
        yield Input(default, id="path")
        yield Checkbox("Replace the file if it exists", id="overwrite")

    def prepare(self) -> Callable[[], Any]:
        fmt = self.query_one("#format", Select).value
        path_text = self.value("path")
        if not path_text:
            raise ValueError("Give a file to write.")
        path = Path(path_text).expanduser()
        overwrite = self.query_one("#overwrite", Checkbox).value
        caracal, progress = self.flow.context.caracal, self.progress()
        return lambda: (
            caracal.ledger.export(path, str(fmt), overwrite=overwrite, progress=progress),
            path,
        )
