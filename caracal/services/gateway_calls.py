"""The provider gateway as an operator sees it: the address agents call for each provider, and
the calls the gateway and forward authentication decided lately (read back from the ledger)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from caracal.core.reasons import GATEWAY_REFUSALS, VALIDATION_DENIALS
from caracal.services.ledger_reads import LedgerFilter

if TYPE_CHECKING:
    from caracal.services.facade import Caracal

# The `source`s the gateway and forward authentication record their decisions with.
GATED_SOURCES = frozenset({"gateway", "forward-auth"})
RUNTIME_URL_VARIABLE = "CARACAL_RUNTIME_URL"
PROBE_SECONDS = 0.5
SCAN_LIMIT = 5_000  # newest decision events looked through for one provider's recent calls
_PAGE = 500


@dataclass(frozen=True)
class GatewayCall:
    """One call the gateway (or forward authentication) decided on, as the ledger has it."""

    seq: int
    ts_us: int
    source: str
    principal: str  # the subject's name; "-" when the token named no known mandate
    call: str  # "GET /repos/x" for a call refused before its mandate, else the action
    allowed: bool
    reason_code: str
    reason: str
    count: int = 1  # more than one for denials counted in aggregate (no principal to blame)


@dataclass(frozen=True)
class GatewayAddress:
    """Where agents reach a provider through the gateway, or why that is not known."""

    url: str
    live: bool  # a runtime answered there just now
    hint: str


class GatewayCallService:
    def __init__(self, app: Caracal) -> None:
        self.app = app

    def runtime_url(self) -> str:
        """The runtime agents call: `CARACAL_RUNTIME_URL` (what `caracal.client` reads), else
        the workspace's `runtime.host` and `runtime.port`."""
        url = (self.app.env.get(RUNTIME_URL_VARIABLE) or "").strip()
        if url:
            return url.rstrip("/")
        runtime = self.app.config.runtime
        host = runtime.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere: call it locally
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{runtime.port}"

    def address(self, provider: str) -> GatewayAddress:
        """The provider's gateway URL, and whether a runtime answers there (a short probe of
        its `/health`); if none does, how to start one."""
        runtime = self.runtime_url()
        url = f"{runtime}/v1/providers/{provider}/"
        if _answers(runtime):
            return GatewayAddress(
                url, True, "Agents call it with their mandate as the bearer token."
            )
        parsed = urlsplit(runtime)
        return GatewayAddress(
            url,
            False,
            f"No runtime answers at {runtime}: start one with "
            f"`caracal serve --port {parsed.port or 80}` (or set {RUNTIME_URL_VARIABLE} to where "
            "yours runs).",
        )

    def recent(self, provider: str, limit: int = 20) -> list[GatewayCall]:
        """The provider's gated calls, newest first: decisions recorded by the gateway or
        forward authentication for it (each names its subject), and anonymous denials counted
        in aggregate. Looks through the newest `SCAN_LIMIT` decision events at most."""
        names = {p["id"]: p["name"] for p in self.app.principals.all()}
        found: list[GatewayCall] = []
        for event in self._decisions():
            call = _gated_call(event, provider, names)
            if call is not None:
                found.append(call)
                if len(found) >= limit:
                    break
        return found

    def _decisions(self) -> Iterator[dict[str, Any]]:
        flt = LedgerFilter(types=["validation."])
        before: int | None = None
        seen = 0
        while seen < SCAN_LIMIT:
            page = self.app.ledger.events(flt, limit=_PAGE, before_seq=before)
            if not page:
                return
            yield from page
            seen += len(page)
            before = int(page[-1]["seq"])


def _answers(runtime: str) -> bool:
    try:
        with urllib.request.urlopen(f"{runtime}/health", timeout=PROBE_SECONDS):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True  # a runtime that is not healthy is still there
    except (OSError, ValueError):
        return False


def _gated_call(event: dict[str, Any], provider: str, names: dict[str, str]) -> GatewayCall | None:
    payload = event["payload"]
    if not isinstance(payload, dict) or payload.get("source") not in GATED_SOURCES:
        return None
    action = str(payload.get("action") or "")
    if payload.get("provider") != provider and not action.startswith(f"provider:{provider}:"):
        return None
    method, path = payload.get("method"), payload.get("path")
    call = f"{method} {path}" if method and path else action or "-"
    kind = event["type"]
    code = str(event.get("reason_code") or "")
    reason = payload.get("reason") or VALIDATION_DENIALS.get(code) or GATEWAY_REFUSALS.get(code)
    principal_id = event.get("principal_id")
    return GatewayCall(
        seq=int(event["seq"]),
        ts_us=int(event["ts"]),
        source=str(payload["source"]),
        principal=names.get(principal_id, principal_id) if principal_id else "-",
        call=call,
        allowed=kind == "validation.allowed",
        reason_code=code,
        reason=str(reason or ""),
        count=int(payload.get("count") or 1) if kind.endswith("aggregated") else 1,
    )
