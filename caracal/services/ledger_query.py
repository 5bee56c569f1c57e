"""The Ledger search box: words an operator types, read as a ledger filter.

Each word is an event type (`validation.denied`, or a family such as `validation`), a reason
code (`ACTION_OUT_OF_SCOPE`), `denied` / `allowed` / `refused`, a principal's name, or the start
of a mandate or principal id; case does not matter. Words that are none of these are reported,
never silently ignored."""

from __future__ import annotations

from dataclasses import dataclass, field

from caracal.core.reasons import ISSUANCE_REFUSALS, VALIDATION_DENIALS

EVENT_TYPES = (
    "backup.created",
    "backup.restored",
    "key.revoked",
    "ledger.head_kept",
    "ledger.rollback_accepted",
    "mandate.delegated",
    "mandate.delegation_refused",
    "mandate.issue_refused",
    "mandate.issued",
    "mandate.revoked",
    "policy.created",
    "policy.deactivated",
    "principal.activated",
    "principal.key_rotated",
    "principal.registered",
    "principal.revoked",
    "principal.suspended",
    "provider.added",
    "provider.imported",
    "provider.removed",
    "provider.updated",
    "validation.allowed",
    "validation.denials_aggregated",
    "validation.denied",
    "workspace.created",
)
FAMILIES = sorted({t.split(".")[0] for t in EVENT_TYPES})
WORDS = {
    "denied": ["validation.denied"],
    "denials": ["validation.denied"],
    "allowed": ["validation.allowed"],
    "refused": ["mandate.issue_refused", "mandate.delegation_refused"],
    "refusals": ["mandate.issue_refused", "mandate.delegation_refused"],
}


@dataclass(frozen=True)
class LedgerQuery:
    types: list[str] = field(default_factory=list)
    reason_code: str | None = None
    principal_id: str | None = None
    id_prefix: str | None = None
    not_understood: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.types or self.reason_code or self.principal_id or self.id_prefix)


def parse_ledger_query(text: str, principals: dict[str, str]) -> LedgerQuery:
    """`principals` maps each principal's name to its id."""
    by_name = {name.lower(): pid for name, pid in principals.items()}
    codes = {c.upper() for c in (*VALIDATION_DENIALS, *ISSUANCE_REFUSALS)}
    types: list[str] = []
    reason_code = principal_id = id_prefix = None
    unknown: list[str] = []
    for word in text.split():
        lower = word.lower()
        if lower.startswith(("mnd_", "pr_")):
            id_prefix = lower
        elif word.upper() in codes:
            reason_code = word.upper()
        elif lower in WORDS:
            types += WORDS[lower]
        elif lower in EVENT_TYPES:
            types.append(lower)
        elif lower.rstrip(".") in FAMILIES:
            types.append(lower.rstrip(".") + ".")
        elif lower in by_name:
            principal_id = by_name[lower]
        else:
            unknown.append(word)
    return LedgerQuery(types, reason_code, principal_id, id_prefix, unknown)
