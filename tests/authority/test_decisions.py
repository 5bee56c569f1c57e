"""The authority decisions as the pure functions of `caracal.core.authority`: one place for
every rule of issuance and delegation, returning the plan or the refusal. No store here."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caracal.core.authority import SourceState, decide_delegation, decide_issuance
from caracal.core.errors import DeniedError, ValidationError
from caracal.core.jws import TokenError
from caracal.core.mandates import MandateClaims, Policy, Principal
from caracal.core.scopes import Catalog, ProviderCatalog

REPOS, ADMIN = "provider:gh:resource:repos", "provider:gh:resource:admin"
READ, DELETE = "provider:gh:action:read", "provider:gh:action:delete"
CATALOG = Catalog(
    {
        "gh": ProviderCatalog(
            "gh",
            frozenset({"repos", "admin"}),
            frozenset({"read", "delete"}),
            frozenset({("repos", "read"), ("admin", "read"), ("admin", "delete")}),
        )
    }
)
ALICE = Principal("pr_a", "alice", "human", "active")
ORCH = Principal("pr_o", "orch", "orchestrator", "active")
W1 = Principal("pr_w", "w1", "worker", "active")
USABLE = SourceState(True, "ALLOWED", "usable")
NOW = 1_000_000


def policy(principal: Principal, *, active: bool = True, validity: int = 3600) -> Policy:
    return Policy(
        f"pol_{principal.name}",
        principal.id,
        validity,
        ("provider:gh:resource:*",),
        ("provider:gh:action:*",),
        3,
        active,
    )


def source(**changes: object) -> MandateClaims:
    claims = MandateClaims(
        id="mnd_src",
        workspace_id="ws",
        issuer_id=ALICE.id,
        subject_id=ORCH.id,
        issued_at=NOW - 100,
        not_before=NOW - 100,
        expires_at=NOW + 600,
        resources=(REPOS, ADMIN),
        actions=(READ, DELETE),
        depth=2,
        parent_id=None,
        intent_hash=None,
        grants=((0, 0), (1, 0), (1, 1)),
    )
    return replace(claims, **changes)  # type: ignore[arg-type]


def delegate(**changes: object) -> object:
    arguments: dict[str, object] = {
        "source": source(),
        "source_state": USABLE,
        "delegator": ORCH,
        "target": W1,
        "target_policy": policy(W1),
        "catalog": CATALOG,
        "resources": [REPOS],
        "actions": [READ],
        "ttl": 300,
        "depth": None,
        "intent_hash": None,
        "now": NOW,
    }
    arguments.update(changes)
    return decide_delegation(**arguments)  # type: ignore[arg-type]


def refusal(code: str, **changes: object) -> DeniedError:
    with pytest.raises(DeniedError) as caught:
        delegate(**changes)
    assert caught.value.reason_code == code, caught.value.message
    return caught.value


def test_no_active_policy_refuses_delegation_as_it_refuses_issuance() -> None:
    refusal("NO_ACTIVE_POLICY", target_policy=None)
    refusal("NO_ACTIVE_POLICY", target_policy=policy(W1, active=False))
    refusal("NO_ACTIVE_POLICY", target_policy=policy(ORCH))  # someone else's policy
    with pytest.raises(DeniedError) as caught:
        decide_issuance(
            issuer=ALICE,
            subject=ORCH,
            policy=None,
            catalog=CATALOG,
            resources=[REPOS],
            actions=[READ],
            ttl=60,
            delay=0,
            depth=0,
            intent_hash=None,
            now=NOW,
        )
    assert caught.value.reason_code == "NO_ACTIVE_POLICY"
    # The message says what to do in words every front end can show: no command-line flag.
    assert "--" not in caught.value.message and caught.value.hint == "policy"


def test_the_target_policy_bounds_every_delegation() -> None:
    refusal("POLICY_VALIDITY_EXCEEDED", target_policy=policy(W1, validity=60))
    assert delegate(target_policy=policy(W1, validity=300)).expires_at == NOW + 300  # type: ignore[attr-defined]


def test_grants_are_declared_pairs_and_a_subset_of_the_sources() -> None:
    plan = delegate(resources=[REPOS, ADMIN], actions=[READ, DELETE])
    assert plan.grants == ((0, 0), (1, 0), (1, 1))  # type: ignore[attr-defined]
    # (repos, delete) was never declared: the cross product is not a grant.
    claims = plan.claims("mnd_child", "ws", NOW)  # type: ignore[attr-defined]
    assert claims.allows(ADMIN, DELETE) and not claims.allows(REPOS, DELETE)
    with pytest.raises(ValidationError, match="declared on none of the resources"):
        delegate(resources=[REPOS], actions=[DELETE])
    narrow = source(resources=(REPOS, ADMIN), actions=(READ,), grants=((0, 0),))
    error = refusal("SCOPE_NOT_SUBSET", source=narrow, resources=[ADMIN], actions=[READ])
    assert "on resource" in error.message


def test_a_source_expired_within_the_clock_leeway_is_refused() -> None:
    expired = source(expires_at=NOW - 5)
    # Validation (leeway 30 s) still calls it usable; the decision does not sign from it.
    refusal("SOURCE_EXPIRED", source=expired)
    refusal("SOURCE_EXPIRED", source_state=SourceState(False, "MANDATE_EXPIRED", "expired"))
    refusal("SOURCE_INVALID", source_state=SourceState(False, "MANDATE_REVOKED", "revoked"))


def test_the_intent_binding_and_depth_are_the_decisions_too() -> None:
    bound = source(intent_hash="a" * 64)
    assert delegate(source=bound).intent_hash == "a" * 64  # type: ignore[attr-defined]
    refusal("SCOPE_NOT_SUBSET", source=bound, intent_hash="b" * 64)
    refusal("DELEGATION_DEPTH_EXHAUSTED", source=source(depth=0))
    refusal("DELEGATION_DEPTH_EXHAUSTED", depth=2)


def test_claims_validation_would_call_malformed_are_never_signable() -> None:
    plan = delegate()
    good = plan.claims("mnd_child", "ws", NOW)  # type: ignore[attr-defined]
    born_expired = replace(good, expires_at=good.not_before)
    with pytest.raises(TokenError, match="expires before it starts"):
        born_expired.signable()
    legacy = replace(good, grants=None)
    with pytest.raises(TokenError):
        legacy.signable()
    loose = replace(good, grants=())
    with pytest.raises(TokenError):
        loose.signable()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nbf_offset=st.integers(-2000, 2000),
    exp_offset=st.integers(-60, 4000),
    ttl=st.integers(1, 10_000),
    depth=st.one_of(st.none(), st.integers(0, 4)),
    source_depth=st.integers(0, 4),
    pick=st.sets(st.sampled_from([(REPOS, READ), (ADMIN, READ), (ADMIN, DELETE)]), min_size=1),
)
def test_every_plan_the_decision_returns_is_signable(
    nbf_offset: int,
    exp_offset: int,
    ttl: int,
    depth: int | None,
    source_depth: int,
    pick: set[tuple[str, str]],
) -> None:
    """Whatever the source's window and the request, the decision either refuses or returns
    claims that validation reads back as themselves (never a token it would call malformed)."""
    nbf = NOW + nbf_offset
    exp = max(nbf + 1, NOW + exp_offset)
    resources = sorted({r for r, _ in pick})
    actions = sorted({a for _, a in pick})
    try:
        plan = delegate(
            source=source(not_before=nbf, expires_at=exp, depth=source_depth),
            resources=resources,
            actions=actions,
            ttl=ttl,
            depth=depth,
            target_policy=policy(W1, validity=10_000),
        )
    except (DeniedError, ValidationError):
        return
    claims = plan.claims("mnd_child", "ws", NOW)  # type: ignore[attr-defined]
    assert MandateClaims.from_claims(claims.to_claims()) == claims
    assert claims.not_before < claims.expires_at <= exp
