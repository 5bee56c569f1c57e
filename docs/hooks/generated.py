"""MkDocs hook: tables read from the code at build time, so the reference cannot drift.

A page asks for a table with a marker on a line of its own, `<!-- generated: NAME -->`; an
unknown name fails the build. The same functions back `tests/docs/`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

# What each exit code means to an operator; a new ExitCode member without a line here fails
# the build.
EXIT_MEANINGS = {
    "OK": "success",
    "INTERNAL": "internal error: a bug; details in the workspace log (`logs/caracal.log`)",
    "USAGE": "usage error: unknown option, missing argument, a refused shell line",
    "NOT_FOUND": "not found: workspace, provider, principal, mandate, key, archive",
    "CONFLICT": "conflict: already exists, or not allowed in the current state",
    "INVALID": "invalid input: a scope, duration, name or file that does not validate",
    "DENIED": "denied by an authority decision (issuance, delegation or validation)",
    "INTEGRITY": "integrity failure: ledger, head, rollback or archive verification",
    "UNAVAILABLE": "unavailable: database, Redis, provider, keyring or Docker unreachable or unhealthy",
    "REFUSED": "refused: confirmation needed, or no terminal to ask (pass `--yes`)",
    "CONFIG": "configuration error: `config.yaml`, or the master key",
    "INTERRUPTED": "interrupted by ctrl+c (SIGINT): the command stopped and left nothing half written",
}

# The runtime's endpoints, read from caracal/server/app.py; each needs a line here.
ENDPOINT_MEANINGS = {
    "/health": "200 when the store (and Redis, when configured) answer; 503 naming the failing one",
    "/metrics": "Prometheus text: decisions by reason code, latency, ledger lag, cache, denials",
    "/v1/authorize": "one decision: `{token, action, resource, caller?, intent?}` → 200 allowed, or 401 (no usable mandate) or 403 (not allowed) with a reason code",
    "/v1/providers/{provider}/{path:path}": "the provider gateway: the call decided as the declared action its method and path select, then forwarded with the provider's credential",
    "/v1/forward-auth": "the gateway's decision for nginx `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz`: 200, 401 or 403 with `X-Caracal-Reason`",
    "/.well-known/jwks.json": "the public keys (JWK Set, ES256) of every principal key that can still verify a mandate, with status",
    "/v1/revocations": "`?since=N`: revoked mandates and keys and principal status changes after ledger sequence N, signed by the ledger key",
    "/mcp/{server}": "the MCP gate: every `tools/call` authorised by the bearer mandate before it is forwarded",
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def exit_codes() -> str:
    from caracal.cli.exit_codes import ExitCode

    rows = []
    for code in ExitCode:
        if code.name not in EXIT_MEANINGS:
            raise ValueError(f"ExitCode.{code.name} has no meaning in docs/hooks/generated.py")
        rows.append([str(int(code)), f"`{code.name}`", EXIT_MEANINGS[code.name]])
    return _table(["code", "name", "meaning"], rows)


def validation_reasons() -> str:
    from caracal.core.reasons import VALIDATION_DENIALS

    rows = [
        [str(n), f"`{code}`", text] for n, (code, text) in enumerate(VALIDATION_DENIALS.items(), 1)
    ]
    return _table(["order", "reason code", "meaning"], rows)


def issuance_reasons() -> str:
    from caracal.core.reasons import ISSUANCE_REFUSALS

    return _table(["reason code", "meaning"], [[f"`{c}`", t] for c, t in ISSUANCE_REFUSALS.items()])


def endpoints() -> list[tuple[str, str]]:
    """(path, methods) of every route caracal/server/app.py declares, mounts included."""
    tree = ast.parse((ROOT / "caracal" / "server" / "app.py").read_text())
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in ("Route", "Mount") or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        methods = "GET"
        for kw in node.keywords:
            if kw.arg == "methods" and isinstance(kw.value, ast.List):
                methods = ", ".join(str(ast.literal_eval(e)) for e in kw.value.elts)
        if node.func.id == "Mount":
            found.append((first.value + "/{server}", "POST, GET, DELETE"))
        else:
            found.append((first.value, methods))
    return found


def endpoint_table() -> str:
    rows = []
    for path, methods in endpoints():
        if path not in ENDPOINT_MEANINGS:
            raise ValueError(f"endpoint {path} has no description in docs/hooks/generated.py")
        rows.append([f"`{path}`", methods, ENDPOINT_MEANINGS[path]])
    return _table(["path", "methods", "what it answers"], rows)


def _keys(binding_key: str) -> str:
    names = {"question_mark": "?", "slash": "/"}
    return ", ".join(f"`{names.get(k.strip(), k.strip())}`" for k in binding_key.split(","))


def keymap() -> str:
    """Flow's keys, where they work, from the bindings (`caracal.flow.keymap`: the same list
    `?` shows in Flow)."""
    from caracal.flow.keymap import markdown_table

    return markdown_table()


def config_keys() -> str:
    """Every config.yaml key, from the pydantic model (unknown keys are errors)."""
    from pydantic import BaseModel

    from caracal.home.config_model import WorkspaceConfig

    rows: list[list[str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
                continue
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if info.default_factory is not None:
                default = "(generated)" if name == "created_at" else "[]"
            else:
                default = "none" if info.default is None else f"`{info.default}`"
            if info.is_required():
                default = "required"
            text = info.description or (model.__doc__ or "").strip().split("\n")[0]
            if name == "witnesses":
                text += (
                    " Each item: `path`, `redis_url`, `redis_key`, `http_url`, `timeout_seconds`."
                )
            secret = "sealed (`ENC[...]`)" if extra.get("secret") else ""
            rows.append([f"`{prefix}{name}`", default, " ".join(p for p in (text, secret) if p)])

    walk(WorkspaceConfig, "")
    return _table(["key", "default", "notes"], rows)


def gateway_reasons() -> str:
    from caracal.core.reasons import GATEWAY_REFUSALS

    return _table(["reason code", "meaning"], [[f"`{c}`", t] for c, t in GATEWAY_REFUSALS.items()])


GENERATORS: dict[str, Callable[[], str]] = {
    "exit-codes": exit_codes,
    "validation-reasons": validation_reasons,
    "issuance-reasons": issuance_reasons,
    "gateway-reasons": gateway_reasons,
    "endpoints": endpoint_table,
    "flow-keymap": keymap,
    "config-keys": config_keys,
}


def render(markdown: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated table {name!r}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return render(markdown)
