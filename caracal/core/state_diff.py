"""The plan: what applying a file would create (+), change (~), deactivate or suspend (-),
and which of those changes widen authority. Pure: two states in, a plan out."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from caracal.core.durations import parse_duration
from caracal.core.workspace_state import (
    PolicyEntry,
    PrincipalEntry,
    ProviderEntry,
    ToolEntry,
    WorkspaceState,
)

Op = Literal["+", "~", "-"]
Kind = Literal["provider", "principal", "policy", "tool", "setting"]
SUSPEND_FLAG = "--allow-suspend"
# Settings whose larger value accepts more.
WIDENING_SETTINGS: dict[str, str] = {
    "validation.clock_leeway_seconds": "accepts tokens further past their expiry",
}


@dataclass(frozen=True)
class Change:
    op: Op
    kind: Kind
    name: str
    details: tuple[str, ...] = ()
    widens: tuple[str, ...] = ()  # why this change widens authority, if it does
    needs: str | None = None  # the apply flag this change needs
    desired: Any = field(default=None, compare=False, repr=False)
    current: Any = field(default=None, compare=False, repr=False)

    @property
    def verb(self) -> str:
        if self.op == "+":
            return "create"
        if self.op == "~":
            return "change"
        return {"principal": "suspend", "policy": "deactivate"}.get(self.kind, "remove")

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "action": self.verb,
            "kind": self.kind,
            "name": self.name,
            "details": list(self.details),
            "widens_authority": bool(self.widens),
            "widening": list(self.widens),
            "needs": self.needs,
        }


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    problems: tuple[str, ...]  # changes the file asks for that cannot be made

    @property
    def empty(self) -> bool:
        return not self.changes and not self.problems

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "change": 0, "remove": 0, "widening": 0}
        for change in self.changes:
            counts[
                "create" if change.op == "+" else "change" if change.op == "~" else "remove"
            ] += 1
            counts["widening"] += bool(change.widens)
        return counts

    def summary_line(self) -> str:
        s = self.summary()
        return (
            f"{s['create']} to create, {s['change']} to change, {s['remove']} to deactivate or "
            f"remove; {s['widening']} {'widens' if s['widening'] == 1 else 'widen'} authority"
        )


def normalized(state: WorkspaceState) -> WorkspaceState:
    """The state in the order and form the workspace reports it (lists sorted)."""
    providers = sorted(
        (
            p.model_copy(
                update={
                    "resources": sorted(p.resources, key=lambda r: r.id),
                    "actions": sorted(p.actions, key=lambda a: (a.resource, a.id)),
                }
            )
            for p in state.providers
        ),
        key=lambda p: p.name,
    )
    policies = sorted(
        (
            p.model_copy(update={"resources": sorted(p.resources), "actions": sorted(p.actions)})
            for p in state.policies
        ),
        key=lambda p: p.principal,
    )
    return state.model_copy(
        update={
            "providers": providers,
            "principals": sorted(state.principals, key=lambda p: p.name),
            "policies": policies,
            "tools": sorted(state.tools, key=lambda t: t.name),
        }
    )


def plan(current: WorkspaceState, desired: WorkspaceState, *, allow_suspend: bool) -> Plan:
    """In the order apply makes them: providers, principals, policies, tools, and removals
    of what depends on nothing left last."""
    current, desired = normalized(current), normalized(desired)
    changes: list[Change] = []
    problems: list[str] = []
    changes += _providers(current.providers, desired.providers)
    changes += _principals(current.principals, desired.principals, allow_suspend, problems)
    changes += _policies(current.policies, desired.policies)
    changes += _tools(current.tools, desired.tools)
    changes += _settings(current.settings, desired.settings)
    order = {"+": 0, "~": 0, "-": 1}
    changes.sort(key=lambda c: (order[c.op], _KIND_ORDER[c.kind][order[c.op]]))
    return Plan(tuple(changes), tuple(problems))


# Creations and changes: providers first (the rest refer to them); removals: tools first.
_KIND_ORDER = {
    "provider": (0, 3),
    "principal": (1, 2),
    "policy": (2, 1),
    "tool": (3, 0),
    "setting": (4, 4),
}


def _pairs(provider: ProviderEntry) -> set[str]:
    return {f"{a.resource}:{a.id}" for a in provider.actions}


def _provider_fields(provider: ProviderEntry) -> dict[str, Any]:
    # The credential reference is where a credential comes from on creation, not state.
    return provider.model_dump(exclude={"credential_env"})


def _providers(current: Sequence[ProviderEntry], desired: Sequence[ProviderEntry]) -> list[Change]:
    have = {p.name: p for p in current}
    want = {p.name: p for p in desired}
    out: list[Change] = []
    for name, new in want.items():
        old = have.get(name)
        if old is None:
            pairs = sorted(_pairs(new))
            out.append(
                Change(
                    "+",
                    "provider",
                    name,
                    (
                        f"{new.base_url} ({new.service_type}, auth {new.auth})",
                        *(f"action {p}" for p in pairs),
                    ),
                    (f"new provider with {len(pairs)} action(s)",) if pairs else (),
                    desired=new,
                )
            )
            continue
        before, after = _provider_fields(old), _provider_fields(new)
        if before == after:
            continue
        details = [
            f"{key}: {before[key]!r} -> {after[key]!r}"
            for key in after
            if key not in ("resources", "actions") and before[key] != after[key]
        ]
        added, dropped = _pairs(new) - _pairs(old), _pairs(old) - _pairs(new)
        details += [f"+ action {p}" for p in sorted(added)]
        details += [f"- action {p}" for p in sorted(dropped)]
        if before["resources"] != after["resources"] and not (added or dropped):
            details.append("resources or descriptions change")
        elif before["actions"] != after["actions"] and not (added or dropped):
            details.append("action methods or paths change")
        widens = [f"adds action {p}" for p in sorted(added)]
        if old.base_url != new.base_url:
            widens.append("points at another base URL")
        out.append(Change("~", "provider", name, tuple(details), tuple(widens), None, new, old))
    for name in sorted(have.keys() - want.keys()):
        out.append(Change("-", "provider", name, ("its tools go with it",), current=have[name]))
    return out


def _principals(
    current: Sequence[PrincipalEntry],
    desired: Sequence[PrincipalEntry],
    allow_suspend: bool,
    problems: list[str],
) -> list[Change]:
    have = {p.name: p for p in current}
    want = {p.name: p for p in desired}
    out: list[Change] = []
    for name, new in want.items():
        old = have.get(name)
        if old is None:
            details = [f"{new.kind}" + (f" <{new.email}>" if new.email else "")]
            if new.status != "active":
                details.append(f"then {new.status}")
            out.append(Change("+", "principal", name, tuple(details), desired=new))
            continue
        if old.kind != new.kind:
            problems.append(f"principal {name} is of kind {old.kind}; a kind cannot change")
        if old.email != new.email:
            problems.append(
                f"principal {name} has email {old.email!r}; an email cannot change from a file"
            )
        if old.status == new.status:
            continue
        if old.status == "revoked":
            problems.append(f"principal {name} is revoked; it cannot become {new.status}")
            continue
        widens = ("reactivates a principal",) if new.status == "active" else ()
        out.append(
            Change(
                "~",
                "principal",
                name,
                (f"status: {old.status} -> {new.status}",),
                widens,
                None,
                new,
                old,
            )
        )
    for name in sorted(have.keys() - want.keys()):
        old = have[name]
        if old.status != "active":
            continue  # already suspended or revoked: nothing to take away
        out.append(
            Change(
                "-",
                "principal",
                name,
                ("not in the file: suspended, never deleted",),
                needs=None if allow_suspend else SUSPEND_FLAG,
                current=old,
            )
        )
    return out


def _seconds(policy: PolicyEntry) -> int:
    return parse_duration(policy.max_validity)


def _policies(current: Sequence[PolicyEntry], desired: Sequence[PolicyEntry]) -> list[Change]:
    have = {p.principal: p for p in current}
    want = {p.principal: p for p in desired}
    out: list[Change] = []
    for name, new in want.items():
        old = have.get(name)
        if old is None:
            out.append(
                Change(
                    "+",
                    "policy",
                    name,
                    (
                        f"max validity {new.max_validity}, depth {new.delegation_depth}",
                        *(f"resource {r}" for r in new.resources),
                        *(f"action {a}" for a in new.actions),
                    ),
                    ("grants a principal that has no active policy",),
                    desired=new,
                )
            )
            continue
        if (
            _seconds(old) == _seconds(new)
            and set(old.resources) == set(new.resources)
            and set(old.actions) == set(new.actions)
            and old.delegation_depth == new.delegation_depth
        ):
            continue
        details: list[str] = []
        widens: list[str] = []
        if _seconds(old) != _seconds(new):
            details.append(f"max validity: {old.max_validity} -> {new.max_validity}")
            if _seconds(new) > _seconds(old):
                widens.append("longer max validity")
        if old.delegation_depth != new.delegation_depth:
            details.append(f"delegation depth: {old.delegation_depth} -> {new.delegation_depth}")
            if new.delegation_depth > old.delegation_depth:
                widens.append("deeper delegation")
        for what, before, after in (
            ("resource", old.resources, new.resources),
            ("action", old.actions, new.actions),
        ):
            for pattern in sorted(set(after) - set(before)):
                details.append(f"+ {what} {pattern}")
                if not any(_covers(old_pattern, pattern) for old_pattern in before):
                    widens.append(f"adds {what} {pattern}")
            details += [f"- {what} {p}" for p in sorted(set(before) - set(after))]
        out.append(Change("~", "policy", name, tuple(details), tuple(widens), None, new, old))
    for name in sorted(have.keys() - want.keys()):
        out.append(
            Change(
                "-",
                "policy",
                name,
                ("mandates it holds stay valid until they expire",),
                current=have[name],
            )
        )
    return out


def _tools(current: Sequence[ToolEntry], desired: Sequence[ToolEntry]) -> list[Change]:
    have = {t.name: t for t in current}
    want = {t.name: t for t in desired}
    out: list[Change] = []
    for name, new in want.items():
        old = have.get(name)
        if old is None:
            out.append(
                Change(
                    "+", "tool", name, (f"{new.server}: {new.resource} {new.action}",), desired=new
                )
            )
        elif old != new:
            details = tuple(
                f"{key}: {getattr(old, key)!r} -> {getattr(new, key)!r}"
                for key in ("server", "resource", "action", "description")
                if getattr(old, key) != getattr(new, key)
            )
            out.append(Change("~", "tool", name, details, desired=new, current=old))
    for name in sorted(have.keys() - want.keys()):
        out.append(Change("-", "tool", name, (), current=have[name]))
    return out


def _settings(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Change]:
    """Only the settings the file names: one left out is left alone."""
    out: list[Change] = []
    for key, value in sorted(desired.items()):
        old = current.get(key)
        if old == value:
            continue
        why = WIDENING_SETTINGS.get(key)
        widens = (why,) if why and _larger(value, old) else ()
        out.append(Change("~", "setting", key, (f"{old!r} -> {value!r}",), widens, desired=value))
    return out


def _larger(new: Any, old: Any) -> bool:
    numbers = (int, float)
    return isinstance(new, numbers) and isinstance(old, numbers) and new > old


def _covers(broad: str, narrow: str) -> bool:
    """Whether every scope `narrow` matches, `broad` matches too (`*` stands for any text
    within one segment)."""
    wide, slim = broad.split(":"), narrow.split(":")
    if len(wide) != len(slim):
        return False
    for outer, inner in zip(wide, slim, strict=True):
        if outer in (inner, "*"):
            continue
        if "*" in inner:
            return False  # a wildcard only a whole-segment `*` is sure to cover
        pattern = "".join(".*" if part == "*" else re.escape(part) for part in _split(outer))
        if not re.fullmatch(pattern, inner):
            return False
    return True


def _split(segment: str) -> list[str]:
    """`ab*c` -> ['ab', '*', 'c']."""
    return [part for part in re.split(r"(\*)", segment) if part]
