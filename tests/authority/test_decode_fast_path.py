"""`jws.decode` reads canonical token parts the short way (the JSON scanner from position 0,
then the canonical re-encoding); every part, canonical or not, gets the same answer as the full
reading it replaced: the same object and verdict, or the same refusal."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from caracal.core import jws
from caracal.core.canonical import canonical_bytes, canonical_json
from caracal.core.jws import TokenError
from caracal.core.keys import b64url
from tests.security.fuzzing import mutate_bytes, random_json, random_text


def reference(raw: bytes, part: str) -> tuple[dict[str, Any], bool]:
    """`_json_object` as it was: `json.loads`, then the canonical re-encoding compared."""
    text = raw.decode("ascii") if raw.isascii() and b"\x00" not in raw else None
    try:
        value = json.loads(raw if text is None else text)
        if not isinstance(value, dict):
            raise TokenError("TOKEN_MALFORMED", f"token {part} must be a JSON object")
        try:
            canonical = text is not None and canonical_json(value) == text
        except ValueError:
            canonical = False
    except TokenError:
        raise
    except (ValueError, TypeError, RecursionError):
        raise TokenError("TOKEN_MALFORMED", f"token {part} is not valid JSON") from None
    return value, canonical


def outcome(read: Any, *args: Any) -> object:
    try:
        value = read(*args)
    except TokenError as exc:
        return ("refused", exc.code, exc.message)
    # NaN is not equal to itself: compare what the value encodes to, and its verdict.
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], dict):
        return (repr(value[0]), value[1])
    return repr(value)


def assert_same(raw: bytes) -> None:
    for part in ("header", "claims"):
        new = outcome(jws._json_object, raw, part)
        assert new == outcome(reference, raw, part), raw


def claims() -> dict[str, Any]:
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


# Other spellings of canonical text, and texts that are not objects or not JSON at all.
SPELLINGS = [
    b"{}",
    b'{"a":1}',
    b' {"a":1}',
    b'{"a":1} ',
    b'{"a":1}\n',
    b'{ "a":1}',
    b'{"a": 1}',
    b'{"b":1,"a":2}',
    b'{"a":1,"a":1}',
    b'{"a":1,"a":2}',
    b'{"a":{"c":1,"b":2}}',
    b'{"a":{"b":1,"b":1}}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":-Infinity}',
    b'{"a":1e999}',
    b'{"a":-0}',
    b'{"a":-0.0}',
    b'{"a":1.0}',
    b'{"a":1.00}',
    b'{"a":1e2}',
    b'{"a":1E2}',
    b'{"a":1e+1}',
    b'{"a":10.0}',
    b'{"a":100000000000000000000000000000}',
    b'{"a":"\\u0061"}',
    b'{"a":"\\/"}',
    b'{"a":"/"}',
    b'{"a":"\\u00e9"}',
    b'{"a":"\\u00E9"}',
    '{"a":"é"}'.encode(),
    b'{"a":"\\ud83d\\ude00"}',
    b'{"a":"\\ud83d"}',
    b'{"a":"\x01"}',
    b'{"a":"\\u0001"}',
    b'{"a":"\x7f"}',
    b'{"a":"\\n"}',
    b'{"a":"\\u000a"}',
    b'{"a":true,"b":false,"c":null}',
    b'{"a":True}',
    b'{"a":1}{"b":2}',
    b'{"a":1}x',
    b'{"a":1',
    b'{"a"}',
    b"[]",
    b"[1]",
    b'"a"',
    b"1",
    b"null",
    b"",
    b" ",
    b"\x00",
    b'{"a":1}\x00',
    b'{"a\x00":1}',
    b"\xef\xbb\xbf" + b'{"a":1}',
    '{"a":1}'.encode("utf-16"),
    '{"a":1}'.encode("utf-16-le"),
    '{"a":1}'.encode("utf-32"),
    b"\xff\xfe",
    b"{" * 100_000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
]


def test_other_spellings_get_the_same_answer() -> None:
    for raw in SPELLINGS:
        assert_same(raw)


def test_issued_claims_are_read_the_short_way_and_accepted() -> None:
    raw = canonical_bytes(claims())
    assert jws._canonical_object(raw) == claims()
    assert jws._json_object(raw, "claims") == (claims(), True)


def test_random_json_and_its_mutants_get_the_same_answer() -> None:
    rng = random.Random(23)
    for _ in range(10_000):
        value: Any = random_json(rng) if rng.random() < 0.5 else claims()
        if rng.random() < 0.3:
            value = {random_text(rng, 6): value, **({"k": 1} if rng.random() < 0.5 else {})}
        try:
            canonical = canonical_bytes(value)
        except (ValueError, UnicodeEncodeError):  # NaN, or a lone surrogate
            continue
        assert_same(canonical)
        assert_same(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        assert_same(json.dumps(value, sort_keys=True, indent=rng.choice([None, 1])).encode())
        assert_same(mutate_bytes(rng, canonical))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_get_the_same_answer(raw: bytes) -> None:
    assert_same(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=10,
    )
)
def test_generated_values_get_the_same_answer(value: Any) -> None:
    assert_same(json.dumps(value).encode())
    assert_same(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def test_decoded_tokens_get_the_same_answer_as_the_full_reading() -> None:
    """Whole tokens: `decode` against itself with the short way turned off."""
    rng = random.Random(29)
    header = b64url(canonical_bytes({"alg": "ES256", "kid": "k_1", "typ": jws.TOKEN_TYPE}))
    signature = b64url(bytes(64))
    for _ in range(3_000):
        raw = canonical_bytes(claims())
        if rng.random() < 0.7:
            raw = mutate_bytes(rng, raw)
        segment = (
            base64.urlsafe_b64encode(raw).decode().rstrip("=")
            if rng.random() < 0.9
            else random_text(rng, 20)
        )
        token = f"{header}.{segment}.{signature}"
        jws._HEADERS.clear()  # the first reading of a header, then the cached one
        for _ in range(2):
            new = outcome(jws.decode, token)
            saved = jws._canonical_object
            jws._canonical_object = lambda raw: None  # type: ignore[assignment]
            try:
                old = outcome(jws.decode, token)
            finally:
                jws._canonical_object = saved  # type: ignore[assignment]
            assert new == old, token
