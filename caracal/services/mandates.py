"""Mandates: issue, delegate, revoke (with every descendant), inspect.

`MandateService` (the facade's `app.mandates`) is put together from one part per concern,
each in its own module: issuing (mandate_issuance), delegating (mandate_delegation), revoking
(mandate_revocation) and reading (mandate_reads). The parts are base classes rather than
objects the service forwards to, so a call costs what it did when they were one class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from caracal.services.issuance_parties import IssuanceParties
from caracal.services.mandate_delegation import MandateDelegation
from caracal.services.mandate_issuance import MandateIssuance
from caracal.services.mandate_reads import MandateReads
from caracal.services.mandate_revocation import MandateRevocation

if TYPE_CHECKING:
    from caracal.services.facade import Caracal


class MandateService(MandateIssuance, MandateDelegation, MandateRevocation, MandateReads):
    def __init__(self, app: Caracal) -> None:
        self.app = app
        # Both parties, the policy and the signing key, kept by authority version.
        self.parties = IssuanceParties()
