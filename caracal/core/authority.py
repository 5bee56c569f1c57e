"""The authority decisions: may this mandate be issued, may this one be delegated, and with
which bounds. Pure functions over what the services read; each returns the plan of the mandate
to sign or raises the refusal (DeniedError with a reason code, recorded by the caller), or a
ValidationError for a request the catalog cannot satisfy at all.

One rule set for both: the subject needs an active policy and the mandate must fit it (no
active policy means NO_ACTIVE_POLICY, for issuance and delegation alike: a deactivated policy
never widens anything); the direction rules; grants are declared (resource, action) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from caracal.core.durations import format_duration
from caracal.core.errors import DeniedError
from caracal.core.mandates import MandateClaims, Policy, Principal
from caracal.core.principals import may_grant
from caracal.core.scopes import Catalog, Grants, any_pattern_matches


@dataclass(frozen=True, slots=True)
class MandatePlan:
    """Everything about the mandate to sign but who signs it and its id."""

    issuer_id: str
    subject_id: str
    resources: tuple[str, ...]
    actions: tuple[str, ...]
    grants: Grants
    not_before: int
    expires_at: int
    depth: int
    intent_hash: str | None
    parent_id: str | None
    policy_id: str
    capped: bool = False  # the requested expiry was cut back to the source's

    def claims(self, mandate_id: str, workspace_id: str, issued_at: int) -> MandateClaims:
        """The claims to sign, checked to read back as themselves (TokenError otherwise)."""
        return MandateClaims(
            id=mandate_id,
            workspace_id=workspace_id,
            issuer_id=self.issuer_id,
            subject_id=self.subject_id,
            issued_at=issued_at,
            not_before=self.not_before,
            expires_at=self.expires_at,
            resources=self.resources,
            actions=self.actions,
            depth=self.depth,
            parent_id=self.parent_id,
            intent_hash=self.intent_hash,
            grants=self.grants,
        ).signable()


@dataclass(frozen=True, slots=True)
class SourceState:
    """What validation says of a delegation source right now (clock leeway included)."""

    usable: bool
    reason_code: str
    reason: str


def _deny(code: str, message: str) -> DeniedError:
    return DeniedError(message, code)


def check_parties(issuer: Principal, subject: Principal) -> None:
    if not issuer.active:
        raise _deny(
            "ISSUER_INACTIVE",
            f"Issuer {issuer.name} is {issuer.status}; it cannot grant authority.",
        )
    if not subject.active:
        raise _deny(
            "SUBJECT_INACTIVE",
            f"Subject {subject.name} is {subject.status}; it cannot receive authority.",
        )
    if not may_grant(issuer.kind, subject.kind):
        raise _deny(
            "DIRECTION_NOT_ALLOWED",
            f"A {issuer.kind} ({issuer.name}) may not grant authority to a {subject.kind} ({subject.name}).",
        )


def check_policy(
    policy: Policy | None,
    subject: Principal,
    resources: Sequence[str],
    actions: Sequence[str],
    validity: int,
    depth: int,
) -> Policy:
    """The subject's active policy is an upper bound on anything granted to it; without one,
    nothing is granted."""
    if policy is None or not policy.active or policy.principal_id != subject.id:
        raise DeniedError(
            f"{subject.name} has no active policy, so no mandate can be issued or delegated "
            "to it; create a policy for it first.",
            "NO_ACTIVE_POLICY",
            hint="policy",
        )
    if validity > policy.max_validity:
        raise _deny(
            "POLICY_VALIDITY_EXCEEDED",
            f"Requested validity {format_duration(validity)} exceeds the policy maximum of "
            f"{format_duration(policy.max_validity)} ({policy.id}).",
        )
    for scope in resources:
        if not any_pattern_matches(policy.resources, scope):
            raise _deny(
                "POLICY_RESOURCE_EXCEEDED", f"Resource {scope} is outside policy {policy.id}."
            )
    for scope in actions:
        if not any_pattern_matches(policy.actions, scope):
            raise _deny("POLICY_ACTION_EXCEEDED", f"Action {scope} is outside policy {policy.id}.")
    if depth > policy.delegation_depth:
        raise _deny(
            "POLICY_DEPTH_EXCEEDED",
            f"Delegation depth {depth} exceeds the policy maximum of {policy.delegation_depth} ({policy.id}).",
        )
    return policy


def decide_issuance(
    *,
    issuer: Principal,
    subject: Principal,
    policy: Policy | None,
    catalog: Catalog,
    resources: Sequence[str],
    actions: Sequence[str],
    ttl: int,
    delay: int,
    depth: int,
    intent_hash: str | None,
    now: int,
) -> MandatePlan:
    """A root mandate from `issuer` to `subject` (scopes already checked against the catalog)."""
    grants = catalog.grants(resources, actions)
    check_parties(issuer, subject)
    bound = check_policy(policy, subject, resources, actions, delay + ttl, depth)
    return MandatePlan(
        issuer_id=issuer.id,
        subject_id=subject.id,
        resources=tuple(resources),
        actions=tuple(actions),
        grants=grants,
        not_before=now + delay,
        expires_at=now + delay + ttl,
        depth=depth,
        intent_hash=intent_hash,
        parent_id=None,
        policy_id=bound.id,
    )


def decide_delegation(
    *,
    source: MandateClaims,
    source_state: SourceState,
    delegator: Principal,
    target: Principal,
    target_policy: Policy | None,
    catalog: Catalog,
    resources: Sequence[str],
    actions: Sequence[str],
    ttl: int,
    depth: int | None,
    intent_hash: str | None,
    now: int,
) -> MandatePlan:
    """A narrower mandate from `source`, signed by its subject (`delegator`), for `target`:
    the source usable and not expired, the direction rules, depth − 1 at most, a subset of the
    source's grants, an expiry no later than the source's, its intent binding kept, and the
    target's active policy. `intent_hash` None keeps the source's binding."""
    grants = catalog.grants(resources, actions)
    if not source_state.usable:
        code = (
            "SOURCE_EXPIRED" if source_state.reason_code == "MANDATE_EXPIRED" else "SOURCE_INVALID"
        )
        raise _deny(
            code,
            f"Mandate {source.id} cannot be delegated: {source_state.reason} ({source_state.reason_code}).",
        )
    if source.expires_at <= now:
        # Within the clock leeway validation still accepts it, but a child would end before
        # it starts.
        raise _deny(
            "SOURCE_EXPIRED",
            f"Mandate {source.id} expired {now - source.expires_at}s ago; nothing can be "
            "delegated from it.",
        )
    check_parties(delegator, target)
    child_intent = source.intent_hash if intent_hash is None else intent_hash
    if source.intent_hash is not None and child_intent != source.intent_hash:
        raise _deny(
            "SCOPE_NOT_SUBSET",
            f"Mandate {source.id} is bound to an intent; a delegation must keep it.",
        )
    if source.depth < 1:
        raise _deny(
            "DELEGATION_DEPTH_EXHAUSTED", f"Mandate {source.id} has no delegation depth left."
        )
    child_depth = source.depth - 1 if depth is None else depth
    if child_depth > source.depth - 1:
        raise _deny(
            "DELEGATION_DEPTH_EXHAUSTED",
            f"Delegation depth {child_depth} is more than mandate {source.id} allows ({source.depth - 1}).",
        )
    extra_res = [r for r in resources if r not in source.resources]
    if extra_res:
        raise _deny(
            "SCOPE_NOT_SUBSET", f"Resource {extra_res[0]} is not granted by mandate {source.id}."
        )
    extra_act = [a for a in actions if a not in source.actions]
    if extra_act:
        raise _deny(
            "SCOPE_NOT_SUBSET", f"Action {extra_act[0]} is not granted by mandate {source.id}."
        )
    granted = source.granted_pairs()
    for i, j in grants:
        if (resources[i], actions[j]) not in granted:
            raise _deny(
                "SCOPE_NOT_SUBSET",
                f"Action {actions[j]} on resource {resources[i]} is not granted by mandate {source.id}.",
            )
    not_before = max(now, source.not_before)
    wanted = now + ttl
    expires = min(wanted, source.expires_at)
    if expires <= not_before:
        raise _deny(
            "SOURCE_INVALID",
            f"Mandate {source.id} becomes valid only after the requested validity would end; "
            "ask for a longer one.",
        )
    bound = check_policy(target_policy, target, resources, actions, expires - now, child_depth)
    return MandatePlan(
        issuer_id=delegator.id,
        subject_id=target.id,
        resources=tuple(resources),
        actions=tuple(actions),
        grants=grants,
        not_before=not_before,
        expires_at=expires,
        depth=child_depth,
        intent_hash=child_intent,
        parent_id=source.id,
        policy_id=bound.id,
        capped=expires < wanted,
    )
