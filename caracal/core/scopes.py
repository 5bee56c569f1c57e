"""Canonical provider scopes and the patterns policies use to bound them.

A scope is `provider:<provider>:resource:<resource_id>` or `provider:<provider>:action:<action_id>`.
Patterns may use `*` within a segment; it never matches across ':'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from caracal.core.errors import ValidationError
from caracal.core.names import IDENTIFIER

ScopeKind = Literal["resource", "action"]
# A mandate's grants: (index into its resources, index into its actions), ascending.
Grants = tuple[tuple[int, int], ...]
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


# A handful of distinct scopes are parsed on every issuance and decision: parsed once (a
# Scope is immutable; an invalid one raises every time, it is never kept).
@lru_cache(maxsize=4096)
def parse_scope(text: str) -> Scope:
    """Parse a concrete scope (no wildcards)."""
    return _split(text, allow_wildcards=False)


@lru_cache(maxsize=4096)
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


def short_scope(text: str) -> str:
    """`provider:github:action:read` -> `github:read`, for narrow columns."""
    parts = text.split(":")
    return f"{parts[1]}:{parts[3]}" if len(parts) == 4 and parts[0] == "provider" else text


def scope_kind(text: str) -> ScopeKind | None:
    """The kind of a well-formed scope or pattern, or None."""
    try:
        return parse_pattern(text).kind
    except ValidationError:
        return None


def by_provider(scopes: Iterable[str], kind: ScopeKind) -> dict[str, list[str]]:
    """The scopes (or patterns) of one kind, grouped by provider, in the order given."""
    out: dict[str, list[str]] = {}
    for text in scopes:
        try:
            scope = parse_pattern(text)
        except ValidationError:
            continue
        if scope.kind == kind:
            out.setdefault(scope.provider, []).append(text)
    return out


def provider_wildcard(provider: str, kind: ScopeKind) -> str:
    """The pattern for every scope of one kind of a provider."""
    return f"provider:{provider}:{kind}:*"


def drop_covered(patterns: Iterable[str]) -> list[str]:
    """The patterns without those another pattern of the list already covers (a concrete scope
    under a picked wildcard), in the order given."""
    listed = list(dict.fromkeys(patterns))
    parsed = {text: parse_pattern(text) for text in listed}

    def covered(text: str) -> bool:
        scope = parsed[text]
        if "*" in scope.provider or "*" in scope.ident:
            return False
        return any(
            other != text and pattern_matches(parsed[other], scope)
            for other in listed
            if "*" in parsed[other].provider or "*" in parsed[other].ident
        )

    return [text for text in listed if not covered(text)]


@dataclass(frozen=True)
class ProviderCatalog:
    """What one provider offers. A passthrough provider (no resources) accepts any id, and any
    of its actions on any of its resources. A scoped provider declares each action on one
    resource: `pairs` holds (resource id, action id)."""

    name: str
    resources: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    pairs: frozenset[tuple[str, str]] = frozenset()

    @property
    def passthrough(self) -> bool:
        return not self.resources

    def declares(self, resource_id: str, action_id: str) -> bool:
        if self.passthrough:
            return True
        return (resource_id, action_id) in self.pairs


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

    def declares(self, resource: str, action: str) -> bool:
        """Whether the catalog declares `action` on `resource` (both concrete scopes)."""
        res, act = parse_scope(resource), parse_scope(action)
        if res.kind != "resource" or act.kind != "action" or res.provider != act.provider:
            return False
        entry = self.providers.get(res.provider)
        return entry is not None and entry.declares(res.ident, act.ident)

    def pairs(self) -> list[tuple[str, str]]:
        """Every declared (resource scope, action scope) pair of the scoped providers (a
        passthrough provider declares none: any of its actions goes with any of its resources)."""
        out: list[tuple[str, str]] = []
        for name in sorted(self.providers):
            entry = self.providers[name]
            out += [
                (resource_scope(name, r), action_scope(name, a)) for r, a in sorted(entry.pairs)
            ]
        return out

    def grants(self, resources: Sequence[str], actions: Sequence[str]) -> Grants:
        """The declared pairs among `resources` × `actions`, as index pairs into the two
        lists; a ValidationError when an action is declared on none of the resources, or a
        resource has none of the actions (it would be granted for nothing)."""
        found = tuple(
            (i, j)
            for i, resource in enumerate(resources)
            for j, action in enumerate(actions)
            if self.declares(resource, action)
        )
        used_actions = {j for _, j in found}
        for j, action in enumerate(actions):
            if j not in used_actions:
                raise ValidationError(
                    f"Action {action} is declared on none of the resources asked for "
                    f"({', '.join(resources)}).",
                    hint="pairs",
                )
        used_resources = {i for i, _ in found}
        for i, resource in enumerate(resources):
            if i not in used_resources:
                raise ValidationError(
                    f"Resource {resource} has none of the actions asked for "
                    f"({', '.join(actions)}) declared on it.",
                    hint="pairs",
                )
        return found

    def require_pattern_pairs(
        self, resource_patterns: Sequence[str], action_patterns: Sequence[str]
    ) -> None:
        """A policy's action patterns must each cover some declared pair with one of its
        resource patterns (a wildcard covers only declared pairs); otherwise the pattern
        admits nothing."""
        res = [parse_pattern(p) for p in resource_patterns]
        for text in action_patterns:
            pattern = parse_pattern(text)
            if not any(self._pattern_pair_exists(r, pattern) for r in res):
                raise ValidationError(
                    f"Action pattern {text} is declared on none of the resources the policy "
                    "allows.",
                    hint="pairs",
                )

    def _pattern_pair_exists(self, resource: Scope, action: Scope) -> bool:
        for name, entry in self.providers.items():
            if not (
                segment_matches(resource.provider, name) and segment_matches(action.provider, name)
            ):
                continue
            if entry.passthrough:
                return True
            if any(
                segment_matches(resource.ident, r) and segment_matches(action.ident, a)
                for r, a in entry.pairs
            ):
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
                    f"Scope {text!r} is not in this workspace's catalog.", hint="scopes"
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
                    f"Pattern {text!r} matches nothing in this workspace's catalog.",
                    hint="scopes",
                )
            if text not in out:
                out.append(text)
        if not out:
            raise ValidationError(f"At least one {kind} pattern is required.")
        return out
