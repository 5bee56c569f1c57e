"""Reading requests strictly: a size cap, JSON, field-level errors, and the bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caracal.core.canonical import StrictJSONError, strict_loads

MAX_TOKEN = 16_384
MAX_SCOPE = 512
MAX_CALLER = 256


class BadRequest(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error = "payload_too_large" if self.status == 413 else "invalid_request"
        return {"error": error, "field": self.field, "message": self.message}


# A refused body up to this size is read (and dropped) before the answer; see `drain`.
DRAIN_BYTES = 4 * 1024 * 1024


async def drain(receive: Any, budget: int = DRAIN_BYTES) -> None:
    """Read and drop the rest of a refused body, up to `budget` bytes: a server that answers
    and closes while the client is still sending makes the client's kernel see a reset, and
    the client reports a broken connection instead of the answer."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def parse_json(body: bytes) -> Any:
    """The one strict reader (`core.canonical`): a duplicated key is refused, naming the field
    it is in (the token, the action... or the intent), never read one way here and another
    elsewhere."""
    try:
        return strict_loads(body)
    except StrictJSONError as exc:
        if exc.path:
            field = str(exc.path[0])
            where = "" if len(exc.path) == 1 else f" inside {field}"
            raise BadRequest(
                400, f"body is not valid JSON: duplicate key {exc.path[-1]!r}{where}", field
            ) from None
        if "nested too deeply" in str(exc) or "recursion" in str(exc).lower():
            raise BadRequest(400, "body is not valid JSON: it is nested too deeply") from None
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    token: str
    action: str
    resource: str
    caller: str | None
    intent: Any


_FIELDS = {"token", "action", "resource", "caller", "intent"}


def _text(data: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(400, f"{name} is required", name)
        return None
    if not isinstance(value, str):
        raise BadRequest(400, f"{name} must be a string", name)
    if required and not value:
        raise BadRequest(400, f"{name} must not be empty", name)
    if len(value) > limit:
        raise BadRequest(400, f"{name} is longer than {limit} characters", name)
    return value


def authorize_request(body: bytes) -> AuthorizeRequest:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise BadRequest(400, f"unknown field {unknown[0]!r}", unknown[0])
    return AuthorizeRequest(
        token=_text(data, "token", MAX_TOKEN, required=True) or "",
        action=_text(data, "action", MAX_SCOPE, required=True) or "",
        resource=_text(data, "resource", MAX_SCOPE, required=True) or "",
        caller=_text(data, "caller", MAX_CALLER, required=False),
        intent=data.get("intent"),
    )
