"""Canonical provider scopes and the patterns policies use to bound them.

A scope is `provider:<provider>:resource:<resource_id>` or `provider:<provider>:action:<action_id>`.
Patterns may use `*` within a segment; it never matches across ':'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from caracal.core.errors import ValidationError
from caracal.core.names import IDENTIFIER

ScopeKind = Literal["resource", "action"]
_SEGMENT_PATTERN = re.compile(r"^[a-z0-9_.*-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Scope:
    provider: str
    kind: ScopeKind
    ident: str

    def __str__(self) -> str:
        return f"provider:{self.provider}:{self.kind}:{self.ident}"


def resource_scope(provider: str, resource: str) -> str:
    return f"provider:{provider}:resource:{resource}"


def action_scope(provider: str, action: str) -> str:
    return f"provider:{provider}:action:{action}"


def _split(text: str, *, allow_wildcards: bool) -> Scope:
    parts = text.split(":")
    valid_segment = _SEGMENT_PATTERN if allow_wildcards else IDENTIFIER
    if (
        len(parts) != 4
        or parts[0] != "provider"
        or parts[2] not in ("resource", "action")
        or not valid_segment.fullmatch(parts[1])
        or not valid_segment.fullmatch(parts[3])
    ):
        what = "scope pattern" if allow_wildcards else "scope"
        raise ValidationError(
            f"Invalid {what} {text!r}: expected provider:<provider>:resource:<id> "
            "or provider:<provider>:action:<id>."
        )
    kind: ScopeKind = "resource" if parts[2] == "resource" else "action"
    return Scope(parts[1], kind, parts[3])


def parse_scope(text: str) -> Scope:
    """Parse a concrete scope (no wildcards)."""
    return _split(text, allow_wildcards=False)


def parse_pattern(text: str) -> Scope:
    """Parse a scope pattern (`*` allowed within a segment)."""
    return _split(text, allow_wildcards=True)


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def segment_matches(pattern: str, value: str) -> bool:
    if "*" not in pattern:
        return pattern == value
    return _compiled(pattern).match(value) is not None


def pattern_matches(pattern: Scope, scope: Scope) -> bool:
    return (
        pattern.kind == scope.kind
        and segment_matches(pattern.provider, scope.provider)
        and segment_matches(pattern.ident, scope.ident)
    )


def any_pattern_matches(patterns: Iterable[str], scope: str) -> bool:
    concrete = parse_scope(scope)
    return any(pattern_matches(parse_pattern(p), concrete) for p in patterns)


@dataclass(frozen=True)
class ProviderCatalog:
    """What one provider offers. A passthrough provider (no resources) accepts any id."""

    name: str
    resources: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()

    @property
    def passthrough(self) -> bool:
        return not self.resources


@dataclass(frozen=True)
class Catalog:
    """The workspace's canonical scope catalog, built from its providers."""

    providers: Mapping[str, ProviderCatalog] = field(default_factory=dict)

    def scopes(self) -> list[str]:
        out: list[str] = []
        for name in sorted(self.providers):
            entry = self.providers[name]
            if entry.passthrough:
                out += [resource_scope(name, "*"), action_scope(name, "*")]
                continue
            out += [resource_scope(name, r) for r in sorted(entry.resources)]
            out += [action_scope(name, a) for a in sorted(entry.actions)]
        return out

    def contains(self, scope: Scope) -> bool:
        entry = self.providers.get(scope.provider)
        if entry is None:
            return False
        if entry.passthrough:
            return True
        ids = entry.resources if scope.kind == "resource" else entry.actions
        return scope.ident in ids

    def pattern_has_match(self, pattern: Scope) -> bool:
        for name, entry in self.providers.items():
            if not segment_matches(pattern.provider, name):
                continue
            if entry.passthrough:
                return True
            ids = entry.resources if pattern.kind == "resource" else entry.actions
            if any(segment_matches(pattern.ident, i) for i in ids):
                return True
        return False

    def require_scopes(self, scopes: Iterable[str], kind: ScopeKind) -> list[str]:
        """Validate concrete scopes of one kind against the catalog; return them deduplicated."""
        out: list[str] = []
        for text in scopes:
            scope = parse_scope(text)
            if scope.kind != kind:
                raise ValidationError(
                    f"{text!r} is an {scope.kind} scope; expected a {kind} scope."
                )
            if not self.contains(scope):
                raise ValidationError(
                    f"Scope {text!r} is not in this workspace's catalog; "
                    "see `caracal provider scopes`."
                )
            if text not in out:
                out.append(text)
        if not out:
            raise ValidationError(f"At least one {kind} scope is required.")
        return out

    def require_patterns(self, patterns: Iterable[str], kind: ScopeKind) -> list[str]:
        """Validate policy patterns of one kind: each must match something in the catalog."""
        out: list[str] = []
        for text in patterns:
            pattern = parse_pattern(text)
            if pattern.kind != kind:
                raise ValidationError(
                    f"{text!r} is an {pattern.kind} pattern; expected a {kind} pattern."
                )
            if not self.pattern_has_match(pattern):
                raise ValidationError(
                    f"Pattern {text!r} matches nothing in this workspace's catalog; "
                    "see `caracal provider scopes`."
                )
            if text not in out:
                out.append(text)
        if not out:
            raise ValidationError(f"At least one {kind} pattern is required.")
        return out
