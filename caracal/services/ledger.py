"""The ledger service: record events inside callers' transactions, list, verify, export.

`LedgerService` (the facade's `app.ledger`) is put together from one part per concern, each in
its own module: recording (ledger_recording), reading and exporting (ledger_reads), verifying
(ledger_verification) and the signed head with its copies outside the store (ledger_trust).
The parts are base classes rather than objects the service forwards to, so a call costs what
it did when they were one class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from caracal.services.ledger_reads import LedgerReads
from caracal.services.ledger_recording import LedgerRecording
from caracal.services.ledger_trust import LedgerTrust
from caracal.services.ledger_verification import LedgerVerification

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


class LedgerService(LedgerRecording, LedgerReads, LedgerVerification, LedgerTrust):
    def __init__(self, app: Caracal) -> None:
        self.app = app
