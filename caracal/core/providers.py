"""Provider definitions: what agents act on, and the catalog of scopes they expose."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from caracal.core.canonical import canonical_bytes
from caracal.core.errors import ValidationError
from caracal.core.names import check_identifier
from caracal.core.scopes import ProviderCatalog

AUTH_SCHEMES = ("none", "api-key", "bearer", "basic", "header", "api-key-query")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*")
DEFAULT_API_KEY_HEADER = "X-API-Key"
# What one provider may declare: far above any real API's catalog, far below what would make
# every later issuance slow (the catalog is read and signed pairs are built from it).
MAX_RESOURCES = 1000
MAX_ACTIONS = 5000
MAX_DESCRIPTION_CHARS = 1000
MAX_URL_CHARS = 2048
DEFAULT_API_KEY_QUERY = "api_key"
_HEADER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True, slots=True)
class ProviderResource:
    resource_id: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ProviderAction:
    resource_id: str
    action_id: str
    method: str = "*"
    path_prefix: str = "/"


@dataclass(frozen=True)
class ProviderSpec:
    """A provider as the operator describes it. Credentials are never part of the spec."""

    name: str
    base_url: str
    service_type: str = "http"
    auth: str = "none"
    header_name: str | None = None
    health_path: str = "/"
    resources: tuple[ProviderResource, ...] = ()
    actions: tuple[ProviderAction, ...] = field(default=())

    @property
    def scoped(self) -> bool:
        return bool(self.resources)

    @property
    def mode(self) -> str:
        return "scoped" if self.scoped else "passthrough"

    def auth_header_name(self) -> str | None:
        if self.auth == "api-key":
            return self.header_name or DEFAULT_API_KEY_HEADER
        if self.auth == "header":
            return self.header_name
        if self.auth in ("bearer", "basic"):
            return "Authorization"
        return None

    def auth_query_name(self) -> str | None:
        """The query parameter carrying the credential (`api-key-query`; `header_name` names
        the parameter)."""
        if self.auth == "api-key-query":
            return self.header_name or DEFAULT_API_KEY_QUERY
        return None

    def catalog(self) -> ProviderCatalog:
        return ProviderCatalog(
            self.name,
            frozenset(r.resource_id for r in self.resources),
            frozenset(a.action_id for a in self.actions),
            frozenset((a.resource_id, a.action_id) for a in self.actions),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "service_type": self.service_type,
            "auth": self.auth,
            "header_name": self.header_name,
            "health_path": self.health_path,
            "mode": self.mode,
            "resources": [
                {"id": r.resource_id, "description": r.description} for r in self.resources
            ],
            "actions": [
                {
                    "resource": a.resource_id,
                    "id": a.action_id,
                    "method": a.method,
                    "path_prefix": a.path_prefix,
                }
                for a in self.actions
            ],
        }

    def definition_sha256(self) -> str:
        """What the ledger records of a provider's definition (catalog, URL, auth scheme; never
        the credential): the SHA-256 of its canonical JSON."""
        return hashlib.sha256(canonical_bytes(self.to_dict())).hexdigest()

    def with_changes(self, **changes: Any) -> ProviderSpec:
        return replace(self, **changes)


def parse_resource_option(text: str) -> ProviderResource:
    """`ID[=DESCRIPTION]` from the command line."""
    ident, _, description = text.partition("=")
    return ProviderResource(ident.strip(), description.strip())


def parse_action_option(text: str) -> ProviderAction:
    """`RESOURCE:ACTION[:METHOD[:PATH_PREFIX]]` from the command line."""
    parts = text.split(":", 3)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValidationError(
            f"Invalid action {text!r}: expected RESOURCE:ACTION[:METHOD[:PATH_PREFIX]]."
        )
    method = parts[2].upper() if len(parts) > 2 and parts[2] else "*"
    prefix = parts[3] if len(parts) > 3 and parts[3] else "/"
    return ProviderAction(parts[0], parts[1], method, prefix)


def spec_from_dict(data: Any) -> ProviderSpec:
    """Build a spec from exported JSON, with one clear error for any malformed field."""
    if not isinstance(data, dict):
        raise ValidationError("Provider file must hold a JSON object.")
    allowed = {
        "name",
        "base_url",
        "service_type",
        "auth",
        "header_name",
        "health_path",
        "mode",
        "resources",
        "actions",
        "format",
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(f"Provider file has unknown field {unknown[0]!r}.")
    try:
        resources = tuple(
            ProviderResource(str(r["id"]), str(r.get("description") or ""))
            for r in _list(data.get("resources"), "resources")
        )
        actions = tuple(
            ProviderAction(
                str(a["resource"]),
                str(a["id"]),
                str(a.get("method") or "*").upper(),
                str(a.get("path_prefix") or "/"),
            )
            for a in _list(data.get("actions"), "actions")
        )
        return ProviderSpec(
            name=_text(data, "name"),
            base_url=_text(data, "base_url"),
            service_type=str(data.get("service_type") or "http"),
            auth=str(data.get("auth") or "none"),
            header_name=(str(data["header_name"]) if data.get("header_name") else None),
            health_path=str(data.get("health_path") or "/"),
            resources=resources,
            actions=actions,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValidationError(f"Provider file is malformed near {exc!s}.") from None


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValidationError(f"Provider field {name!r} must be a list of objects.")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"Provider field {key!r} is missing or not a string.")
    return value


def validate_spec(spec: ProviderSpec, *, has_credential: bool) -> ProviderSpec:
    """Check every rule; raise one clear ValidationError for the first broken one."""
    check_identifier(spec.name, "provider name")
    check_identifier(spec.service_type, "service type")
    _check_url(spec.base_url)
    if spec.auth not in AUTH_SCHEMES:
        raise ValidationError(
            f"Unknown auth scheme {spec.auth!r}: use one of {', '.join(AUTH_SCHEMES)}."
        )
    if spec.auth == "header" and not spec.header_name:
        raise ValidationError("Auth scheme 'header' needs a header name.", hint="header_name")
    if spec.header_name is not None:
        if spec.auth not in ("header", "api-key", "api-key-query"):
            raise ValidationError(
                "A header name only applies to the 'header', 'api-key' and 'api-key-query' "
                "auth schemes (for 'api-key-query' it names the query parameter)."
            )
        if not spec.header_name or set(spec.header_name) - _HEADER_CHARS:
            raise ValidationError(f"Invalid header name {spec.header_name!r}.")
    if spec.auth != "none" and not has_credential:
        raise ValidationError(f"Auth scheme {spec.auth!r} needs a credential.", hint="credential")
    if spec.auth == "none" and has_credential:
        raise ValidationError("A credential was given but the auth scheme is 'none'.", hint="auth")
    _check_path(spec.health_path, "health path")
    _check_catalog(spec.resources, spec.actions)
    return spec


def _check_url(url: str) -> None:
    if len(url) > MAX_URL_CHARS:
        raise ValidationError(f"The base URL is over {MAX_URL_CHARS:,} characters.")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            f"Invalid base URL {url!r}: use http:// or https:// with a host, "
            "e.g. https://api.example.com."
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(f"Base URL {url!r} must not hold credentials, a query or a fragment.")


def _check_path(path: str, what: str) -> None:
    if len(path) > MAX_URL_CHARS:
        raise ValidationError(f"The {what} is over {MAX_URL_CHARS:,} characters.")
    if not path.startswith("/") or any(c.isspace() for c in path) or "?" in path or "#" in path:
        raise ValidationError(
            f"Invalid {what} {path!r}: it must start with '/' and hold no spaces."
        )


def _check_catalog(
    resources: Iterable[ProviderResource], actions: Iterable[ProviderAction]
) -> None:
    resources, actions = tuple(resources), tuple(actions)
    if len(resources) > MAX_RESOURCES:
        raise ValidationError(
            f"A provider declares at most {MAX_RESOURCES:,} resources ({len(resources):,} "
            "given); split it into several providers."
        )
    if len(actions) > MAX_ACTIONS:
        raise ValidationError(
            f"A provider declares at most {MAX_ACTIONS:,} actions ({len(actions):,} given); "
            "split it into several providers."
        )
    seen_resources: set[str] = set()
    for resource in resources:
        check_identifier(resource.resource_id, "resource id")
        if len(resource.description) > MAX_DESCRIPTION_CHARS:
            raise ValidationError(
                f"The description of resource {resource.resource_id!r} is over "
                f"{MAX_DESCRIPTION_CHARS:,} characters; shorten it."
            )
        if resource.resource_id in seen_resources:
            raise ValidationError(f"Resource {resource.resource_id!r} is listed twice.")
        seen_resources.add(resource.resource_id)
    seen_actions: set[tuple[str, str]] = set()
    resources_with_actions: set[str] = set()
    for action in actions:
        if action.resource_id not in seen_resources:
            raise ValidationError(
                f"Action {action.action_id!r} refers to unknown resource {action.resource_id!r}.",
                hint="resource",
            )
        check_identifier(action.action_id, "action id")
        if action.method not in HTTP_METHODS:
            raise ValidationError(
                f"Invalid HTTP method {action.method!r} for action {action.action_id!r}: "
                f"use one of {', '.join(HTTP_METHODS)}."
            )
        _check_path(action.path_prefix, f"path prefix of action {action.action_id!r}")
        key = (action.resource_id, action.action_id)
        if key in seen_actions:
            raise ValidationError(
                f"Action {action.action_id!r} is listed twice for resource {action.resource_id!r}."
            )
        seen_actions.add(key)
        resources_with_actions.add(action.resource_id)
    missing = sorted(seen_resources - resources_with_actions)
    if missing:
        raise ValidationError(f"Resource {missing[0]!r} has no action.", hint="action")


# Whole-provider scopes for a passthrough provider at the gateway: a mandate holds concrete
# scopes only, so "every call" is spelled with this id.
PASSTHROUGH_ID = "all"


def unsafe_path(path: str) -> str | None:
    """Why a decoded request path cannot be matched against path prefixes, or None: a dot
    segment or a backslash could make a path that matches one prefix reach another."""
    if not path.startswith("/"):
        return "the path must start with '/'"
    if "\\" in path or "\x00" in path:
        return "the path holds a backslash or NUL"
    if any(segment in (".", "..") for segment in path.split("/")):
        return "the path holds a '.' or '..' segment"
    return None


def _prefix_matches(prefix: str, path: str) -> bool:
    if prefix in ("/", path):
        return True
    # `/repos` covers `/repos/x`, not `/reposx`; a prefix ending in '/' covers what follows.
    return path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def select_action(spec: ProviderSpec, method: str, path: str) -> ProviderAction | None:
    """The declared action a call selects: among the actions for its method (or any method),
    the one with the longest matching path prefix; an exact method beats `*` at equal length.
    None when nothing matches (the call is not declared)."""
    method = method.upper()
    best: tuple[int, int] | None = None
    chosen: ProviderAction | None = None
    for action in spec.actions:
        if action.method not in (method, "*") or not _prefix_matches(action.path_prefix, path):
            continue
        rank = (len(action.path_prefix), 1 if action.method == method else 0)
        if best is None or rank > best:
            best, chosen = rank, action
    return chosen
