"""Issuing many root mandates from JSON lines, one mandate per line.

Each chunk of lines is one transaction under one signed ledger head, so a thousand mandates
cost one head signature instead of a thousand. Every line gets its own outcome, in input
order: the mandate issued, the refusal (recorded in the ledger, as a single issuance is), or
the input error naming its line number (nothing written for that line)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from caracal.core.canonical import StrictJSONError, strict_loads
from caracal.core.errors import CaracalError, DeniedError, ValidationError
from caracal.core.ledger import NewEvent
from caracal.store import ledger_rows

if TYPE_CHECKING:
    from caracal.services.facade import Caracal
    from caracal.services.mandate_issuance import IssuedMandate, IssueRequest

REQUIRED = ("issuer", "subject", "resources", "actions", "ttl")
OPTIONAL = ("delegation_depth", "intent", "starts_in")
MAX_LINE_CHARS = 65_536
CHUNK = 500
Batch = list[tuple[int, "IssueRequest | CaracalError"]]


@dataclass(frozen=True)
class LineOutcome:
    line: int
    issued: IssuedMandate | None = None
    error: CaracalError | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.issued is not None:
            return {"line": self.line, **self.issued.to_dict()}
        assert self.error is not None
        return {
            "line": self.line,
            "error": getattr(self.error, "reason_code", None) or self.error.kind.name,
            "kind": self.error.kind.value,
            "message": self.error.message,
        }


def parse_line(text: str, number: int) -> IssueRequest:
    """One input line as an issuance request, or a ValidationError naming the line."""
    from caracal.services.mandate_issuance import IssueRequest

    where = f"line {number}"
    if len(text) > MAX_LINE_CHARS:
        raise ValidationError(f"{where} is longer than {MAX_LINE_CHARS} characters.")
    try:
        data = strict_loads(text)
    except StrictJSONError as exc:
        raise ValidationError(f"{where} is not strict JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{where} must be a JSON object, one mandate per line.")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ValidationError(
            f"{where}: unknown field {unknown[0]!r}; fields are {', '.join(REQUIRED + OPTIONAL)}."
        )
    missing = [f for f in REQUIRED if f not in data]
    if missing:
        raise ValidationError(f"{where}: {missing[0]!r} is missing.")
    for name in ("issuer", "subject"):
        if not isinstance(data[name], str):
            raise ValidationError(f"{where}: {name!r} must be a principal's name or id.")
    scopes = {name: _scopes(data[name], name, where) for name in ("resources", "actions")}
    if not isinstance(data["ttl"], str | int) or isinstance(data["ttl"], bool):
        raise ValidationError(f"{where}: 'ttl' must be a duration such as \"1h\" or seconds.")
    depth = data.get("delegation_depth", 0)
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ValidationError(f"{where}: 'delegation_depth' must be a whole number.")
    try:
        return IssueRequest.of(
            data["issuer"],
            data["subject"],
            scopes["resources"],
            scopes["actions"],
            data["ttl"],
            depth,
            data.get("intent"),
            data.get("starts_in"),
        )
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc.message}") from None


def _scopes(value: Any, name: str, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise ValidationError(f"{where}: {name!r} must be a scope or a non-empty list of scopes.")
    return items


def read_requests(lines: Iterable[str]) -> Iterator[tuple[int, IssueRequest | CaracalError]]:
    """Numbered requests (or input errors); blank lines and `#` comments are skipped."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield number, parse_line(text, number)
        except CaracalError as exc:
            yield number, exc


def issue_many(
    app: Caracal,
    requests: Iterable[tuple[int, IssueRequest | CaracalError]],
    chunk: int = CHUNK,
) -> Iterator[LineOutcome]:
    """Outcomes in input order, one transaction (and one signed head) per chunk."""
    it = iter(requests)
    while batch := list(islice(it, chunk)):

        def work(conn: Connection, batch: Batch = batch) -> list[LineOutcome]:
            return _issue_chunk(app, conn, batch)

        yield from app.store.write(work)


def _issue_chunk(app: Caracal, conn: Connection, batch: Batch) -> list[LineOutcome]:
    ledger_rows.lock_head(conn)  # serialised with suspension and key revocation, as one issue
    events: list[NewEvent] = []
    outcomes: list[LineOutcome] = []
    for number, request in batch:
        if isinstance(request, CaracalError):
            outcomes.append(LineOutcome(number, error=request))
            continue
        try:
            result = app.mandates.issue_in(conn, request, events)
        except CaracalError as exc:
            exc.message = f"line {number}: {exc.message}"
            outcomes.append(LineOutcome(number, error=exc))
            continue
        if isinstance(result, DeniedError):
            result.message = f"line {number}: {result.message}"
            outcomes.append(LineOutcome(number, error=result))
        else:
            outcomes.append(LineOutcome(number, issued=result))
    app.ledger.record(conn, *events)
    return outcomes
