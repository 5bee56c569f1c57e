"""`MandateClaims.from_claims` reads well-formed claims through one combined check; every
claim set, well-formed or not, gets the same answer as the plain per-claim checks: the same
claims, or the same TOKEN_MALFORMED message."""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from caracal.core import mandates
from caracal.core.jws import TokenError
from caracal.core.mandates import MandateClaims


class Named(str):
    """A str subclass: the combined check leaves it to the per-claim checks."""


def reference(claims: dict[str, Any]) -> MandateClaims:
    """`from_claims` as it was: every claim checked one by one."""
    version = claims.get("v")
    expected = {mandates.CLAIMS_VERSION: mandates._CLAIM_KEYS, 1: mandates._LEGACY_KEYS}
    if type(version) is not int or frozenset(claims) != expected.get(version):
        raise TokenError("TOKEN_MALFORMED", "the token's claims are not a mandate's")
    mandates._check_types(claims)
    grants = (
        reference_grants(claims["grt"], len(claims["res"]), len(claims["act"]))
        if version == mandates.CLAIMS_VERSION
        else None
    )
    return MandateClaims(
        id=claims["jti"],
        workspace_id=claims["ws"],
        issuer_id=claims["iss"],
        subject_id=claims["sub"],
        issued_at=claims["iat"],
        not_before=claims["nbf"],
        expires_at=claims["exp"],
        resources=tuple(claims["res"]),
        actions=tuple(claims["act"]),
        depth=claims["dep"],
        parent_id=claims["par"],
        intent_hash=claims["ih"],
        grants=grants,
    )


def reference_grants(value: Any, resources: int, actions: int) -> Any:
    """`_grants` as it was: each rule checked on its own."""
    if not isinstance(value, list) or not value:
        raise TokenError("TOKEN_MALFORMED", "claim 'grt' must be a list of index pairs")
    pairs: list[tuple[int, int]] = []
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(type(i) is int for i in pair)
            or not (0 <= pair[0] < resources and 0 <= pair[1] < actions)
        ):
            raise TokenError("TOKEN_MALFORMED", "claim 'grt' holds a pair out of range")
        pairs.append((pair[0], pair[1]))
    if any(a >= b for a, b in itertools.pairwise(pairs)):
        raise TokenError("TOKEN_MALFORMED", "claim 'grt' is not in ascending order")
    if {i for i, _ in pairs} != set(range(resources)) or {j for _, j in pairs} != set(
        range(actions)
    ):
        raise TokenError("TOKEN_MALFORMED", "claim 'grt' leaves a scope without a pair")
    return tuple(pairs)


def valid() -> dict[str, Any]:
    return {
        "v": 2,
        "jti": "mnd_0001",
        "ws": "ws_1",
        "iss": "pr_a",
        "sub": "pr_b",
        "iat": 100,
        "nbf": 100,
        "exp": 200,
        "res": ["r:1", "r:2"],
        "act": ["a:1"],
        "dep": 1,
        "par": None,
        "ih": None,
        "grt": [[0, 0], [1, 0]],
    }


ODD: list[Any] = [
    "",
    "x",
    "mnd_2",
    "é",
    "a\nb",
    "a b",
    "\x7f",
    Named("pr_c"),
    Named(""),
    0,
    -1,
    1,
    100,
    150,
    200,
    250,
    2**70,
    True,
    False,
    1.0,
    None,
    [],
    ["r:1"],
    ["r:1", "r:1"],
    ["r:1", 1],
    ["r:1", Named("r:3")],
    ["é"],
    [["r:1"]],
    {"a": 1},
    [[0, 0]],
    [[0, 0], [1, 0]],
    [[0, 0], [0, 0], [1, 0]],
    [[1, 0], [0, 0]],
    [[0, 0], [1, 0], [1, 0]],
    [[0, 0], [1, 1]],
    [[0, 0], [2, 0]],
    [[0, 0], [1, -1]],
    [[0, 0], [True, 0]],
    [[0, 0], [1, 0, 0]],
    [[0, 0], (1, 0)],
    [[0, 0], [1.0, 0]],
    [[1, 0]],
]


def outcome(read: Any, claims: dict[str, Any]) -> object:
    try:
        return read(claims)
    except TokenError as exc:
        return ("refused", exc.code, exc.message)


def assert_same(claims: dict[str, Any]) -> None:
    assert outcome(MandateClaims.from_claims, claims) == outcome(reference, claims), claims


def test_one_or_two_odd_claims_give_the_same_answer() -> None:
    base = valid()
    keys = list(base)
    assert_same(base)
    for key in keys:
        for value in ODD:
            claims = {**base, key: value}
            assert_same(claims)
            for other in keys:
                for second in ("", "é", -1, None, Named("z"), ["r:1", "r:1"], 300):
                    assert_same({**claims, other: second})


def test_random_claim_sets_give_the_same_answer() -> None:
    rng = random.Random(17)
    keys = list(valid())
    for _ in range(20_000):
        claims = valid()
        for _ in range(rng.randrange(0, 4)):
            claims[rng.choice(keys)] = rng.choice(ODD)
        if rng.random() < 0.1:
            claims.pop(rng.choice(keys))
        if rng.random() < 0.1:
            claims["v"] = 1
            claims.pop("grt", None)
        assert_same(claims)


@settings(max_examples=500, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            key: st.one_of(
                st.none(),
                st.booleans(),
                st.integers(min_value=-2, max_value=300),
                st.text(max_size=6),
                st.lists(st.text(max_size=3), max_size=3),
                st.lists(st.lists(st.integers(min_value=-1, max_value=2), max_size=3), max_size=3),
            )
            for key in valid()
            if key != "v"
        }
    )
)
def test_generated_claim_sets_give_the_same_answer(claims: dict[str, Any]) -> None:
    assert_same({"v": 2, **claims})
