"""Fuzzing mandate tokens: every mutant of a valid token is denied, and validation never fails
in an unexpected way.

Cases (short and long mode alike): 10,000 mutants, through the real `Validator` against the
real store of a workspace built by the CLI. Each starts from one of five issued tokens (a root
mandate, a delegated child, two MCP agent mandates, one bound to an intent, and a revoked
one) and is checked against an action and resource the original is granted:

- characters and bytes: flips, overwrites, insertions, deletions, duplicated spans,
  truncation, swaps, non-ASCII, controls, surrogates;
- segments: swapped, dropped, duplicated, extra, empty, mixed with other tokens' segments;
- re-encodings: the header or claims decoded, altered (alg, kid, typ, crit, unknown fields,
  every claim changed, removed or retyped) and encoded again, signed with the original
  signature, an attacker's key, or the real issuer's key (an insider who holds the key still
  cannot mint a mandate the store does not know);
- other spellings of the same bytes: base64 padding, the standard alphabet, non-canonical
  trailing bits, whitespace; other spellings of the same JSON: spacing, key order, `\\u`
  escapes, `1.0` for `1`, duplicate keys;
- lengths around and far past the 16 KiB limit, and arbitrary text.

What counts as "the same token": a mutant whose `header.claims` is byte-identical to an
issued token's and whose signature verifies under the issuer's key. Only ECDSA's malleable
twin `(r, n - s)` of the original signature qualifies (see
`test_the_malleable_signature_twin_is_the_same_mandate`); it names the same mandate and grants
nothing more. Every other mutant must be denied, and no decision may be `INTERNAL_ERROR` (an
unexpected exception inside validation, even though it fails closed).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given
from hypothesis import strategies as st

from caracal.core.canonical import canonical_bytes, canonical_json
from caracal.core.jws import MAX_TOKEN_BYTES
from caracal.core.keys import b64url, b64url_decode, sign, verify
from caracal.services.authority_state import StoreAuthorityState
from caracal.services.facade import Caracal
from tests.security.fuzzing import (
    AWKWARD_CHARS,
    TIMEOUT,
    FalseAllow,
    Grant,
    Shown,
    Tally,
    World,
    build_world,
    fast_cli,
    fuzz_settings,
    isolated_home,
    mutate_bytes,
    mutate_text,
    random_json,
    random_text,
    rngs,
    tallied,
)

pytestmark = TIMEOUT

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(repr=False)
class Bench(Shown):
    world: World
    app: Caracal
    insider: tuple[str, ec.EllipticCurvePrivateKey]  # alice's real kid and private key
    public: dict[str, ec.EllipticCurvePublicKey]  # issued signing input -> issuer's key
    claims: dict[str, list[Any]]  # claim -> values to try (see claim_pool)
    tally: Tally

    def decide(self, token: str, grant: Grant, caller: str | None) -> Any:
        app = self.app
        with app.store.read() as conn:
            state = StoreAuthorityState(conn, app.workspace_id, app.signing)
            return app.validator.validate(
                token,
                grant.actions[0],
                grant.resources[0],
                state,
                app.clock(),
                caller=caller,
                intent=grant.intent,
            )

    def same_as_issued(self, token: str) -> Grant | None:
        """The issued mandate `token` is a spelling of, if any (see the module docstring)."""
        head, _, signature = token.rpartition(".")
        public = self.public.get(head)
        if public is None:
            return None
        try:
            raw = b64url_decode(signature)
        except ValueError:
            return None
        if not verify(public, head.encode("ascii"), raw):
            return None
        return next(g for g in self.world.grants.values() if g.token.startswith(head + "."))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    home = tmp_path_factory.mktemp("fuzz-tokens") / "home"
    with isolated_home(home), fast_cli(), tallied("tokens") as tally:
        world = build_world()
        app = Caracal.open(world.name)
        try:
            with app.store.read() as conn:
                insider = app.signing.signer(conn, world.principals["alice"], "alice")
                state = StoreAuthorityState(conn, app.workspace_id, app.signing)
                public = {}
                for grant in world.grants.values():
                    head = grant.token.rpartition(".")[0]
                    key = state.key(json.loads(b64url_decode(head.split(".")[0]))["kid"])
                    assert key is not None
                    public[head] = key.public
            yield Bench(world, app, insider, public, claim_pool(world), tally)
        finally:
            app.close()


# ---- mutants ------------------------------------------------------------------------------
B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TOKEN_CHARS = (*B64_CHARS, *B64_CHARS, *AWKWARD_CHARS)
ATTACKER = ec.generate_private_key(ec.SECP256R1())
HEADER_VALUES: dict[str, list[Any]] = {
    "alg": [
        "none",
        "None",
        "NONE",
        "HS256",
        "ES384",
        "ES512",
        "RS256",
        "es256",
        "ES256 ",
        " ES256",
        "ES256\x00",
        "",
        None,
        256,
        ["ES256"],
        {"alg": "ES256"},
        "ＥＳ256",
    ],
    "kid": [
        "",
        None,
        1,
        ["k"],
        "k_0000000000000000",
        "../k",
        "k_\ud800",
        "k_\x00",
        "K_",
        "k_" + "0" * 5000,
        "é",
        "\udcff",
        "' OR 1=1 --",
    ],
    "typ": ["JWT", "jwt", "", None, "caracal-mandate+JWS", "caracal-mandate+jws "],
    "crit": [[], ["exp"], ["b64"], "exp", None, [1]],
    "b64": [False, True],
    "jwk": [{"kty": "EC"}],
    "jku": ["http://127.0.0.1:9/jwks"],
    "x5u": ["http://127.0.0.1:9/x5u"],
    "zip": ["DEF"],
    "cty": ["JWT"],
}
EXTRA_CLAIMS = ("admin", "scope", "aud", "v2", "JTI")


def claim_pool(world: World) -> dict[str, list[Any]]:
    """For every claim: the same claim of every issued mandate, and near misses."""
    pool: dict[str, list[Any]] = {key: [True, "*", 1, None] for key in EXTRA_CLAIMS}
    for grant in world.grants.values():
        for key, value in json.loads(b64url_decode(grant.token.split(".")[1])).items():
            near: list[Any] = [value]
            if isinstance(value, int) and not isinstance(value, bool):
                near += [value + 1, value - 1, value * 2, -value, float(value), str(value), 2**63]
            elif isinstance(value, str):
                near += [value + " ", value.upper(), value[:-1], value + "\x00", value + "\ud800"]
            elif isinstance(value, list):
                near += [[*value, "provider:github:action:admin"], value * 2, [], [value], ["*"]]
                near += [[*value, "provider:docs:action:write", "provider:github:action:write"]]
            pool.setdefault(key, []).extend(near)
    return pool


def spell_json(rng: random.Random, value: dict[str, Any]) -> bytes:
    """`value` as JSON text: canonical (the only accepted spelling) or, one time in five,
    another spelling of the same object."""
    try:
        text = canonical_json(value)
    except ValueError:  # NaN or Infinity
        text = json.dumps(value, sort_keys=True)
    if rng.random() < 0.8:
        return text.encode("ascii")
    kind = rng.choice(
        [
            "spaced",
            "indented",
            "unsorted",
            "unicode",
            "escaped",
            "float",
            "duplicate",
            "bom",
            "trailing",
            "nan",
        ]
    )
    if kind == "spaced":
        text = json.dumps(value, sort_keys=True)
    elif kind == "indented":
        text = json.dumps(value, sort_keys=True, indent=rng.randrange(3))
    elif kind == "unsorted":
        items = list(value.items())
        rng.shuffle(items)
        text = json.dumps(dict(items), separators=(",", ":"))
    elif kind == "unicode":
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    elif kind == "escaped" and '"' in text:
        at = text.index('"') + 1
        text = text[:at] + f"\\u{ord(text[at]):04x}" + text[at + 1 :]
    elif kind == "float":
        text = text.replace(":1,", ":1.0,", 1).replace(":0,", ":0e0,", 1)
    elif kind == "duplicate" and value:
        key = rng.choice(sorted(value))
        again = rng.choice([value[key], "ES256", 0, "x", None])
        text = "{" + json.dumps(key) + ":" + json.dumps(again) + "," + text[1:]
    elif kind == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    elif kind == "trailing":
        text += rng.choice([" ", "\n", "x", "}", "\x00"])
    elif kind == "nan":
        text = text.replace(":0,", ":NaN,", 1).replace(":1,", ":Infinity,", 1)
    return text.encode("utf-8", "surrogatepass")


def spell_b64(rng: random.Random, raw: bytes) -> str:
    """`raw` as base64: canonical base64url (the only accepted spelling) or, one time in
    five, another spelling of the same bytes."""
    canonical = b64url(raw)
    if rng.random() < 0.8:
        return canonical
    kind = rng.choice(["padded", "standard", "bits", "space"])
    if kind == "padded":
        return canonical + "=" * rng.randint(1, 3)
    if kind == "standard":
        return base64.b64encode(raw).decode()
    if kind == "bits" and canonical and len(raw) % 3:
        last = B64_CHARS.index(canonical[-1])
        return canonical[:-1] + B64_CHARS[last ^ rng.randint(1, 3)]
    if kind == "space" and canonical:
        at = rng.randint(0, len(canonical))
        return canonical[:at] + rng.choice([" ", "\n", "\t", "\r\n"]) + canonical[at:]
    return canonical


def reencoded(rng: random.Random, bench: Bench, grant: Grant) -> str:
    """Header and/or claims changed and encoded again; signed as an attacker could."""
    head_b64, claims_b64, signature = grant.token.split(".")
    header = json.loads(b64url_decode(head_b64))
    claims = json.loads(b64url_decode(claims_b64))
    changes = rng.randint(1, 4)
    for _ in range(changes):
        if rng.random() < 0.35:
            key = rng.choice(sorted(HEADER_VALUES))
            if key in header and rng.random() < 0.2:
                del header[key]
            else:
                header[key] = rng.choice(HEADER_VALUES[key])
        else:
            key = rng.choice([*sorted(claims), *EXTRA_CLAIMS])
            if key in claims and rng.random() < 0.1:
                del claims[key]
            elif rng.random() < 0.8:
                claims[key] = rng.choice(bench.claims[key])
            else:
                claims[key] = random_json(rng, 2)
    head = spell_b64(rng, spell_json(rng, header)) + "." + spell_b64(rng, spell_json(rng, claims))
    signer = rng.choice(["original"] * 3 + ["attacker", "insider", "insider", "other", "empty"])
    if signer == "attacker":
        signature = b64url(sign(ATTACKER, head.encode("utf-8", "surrogatepass")))
    elif signer == "insider":  # alice's real key: signs, but the store never issued it
        signature = b64url(sign(bench.insider[1], head.encode("utf-8", "surrogatepass")))
    elif signer == "other":
        signature = rng.choice(bench.world.tokens).split(".")[2]
    elif signer == "empty":
        signature = ""
    return head + "." + signature


def rearranged(rng: random.Random, bench: Bench, grant: Grant) -> str:
    """The token's dot-separated segments rearranged, or mixed with other tokens'."""
    parts = grant.token.split(".")
    others = [t.split(".") for t in bench.world.tokens]
    kind = rng.choice(["permute", "drop", "extra", "mix", "mix", "empty", "separator"])
    if kind == "permute":
        rng.shuffle(parts)
    elif kind == "drop":
        del parts[rng.randrange(3)]
    elif kind == "extra":
        parts.insert(rng.randint(0, 3), rng.choice([*parts, "", "e30", "AA"]))
    elif kind == "mix":
        for _ in range(rng.randint(1, 2)):
            at = rng.randrange(3)
            parts[at] = rng.choice(others)[at if rng.random() < 0.8 else rng.randrange(3)]
    elif kind == "empty":
        parts[rng.randrange(3)] = ""
    separator = rng.choice([".", "..", ",", " .", ". "]) if kind == "separator" else "."
    return separator.join(parts)


def lengthened(rng: random.Random, grant: Grant) -> str:
    """Lengths around and past the 16 KiB limit."""
    head, claims, signature = grant.token.split(".")
    room = MAX_TOKEN_BYTES - len(grant.token)
    size = rng.choice([room - 1, room, room + 1, 20_000, 100_000, 1_000_000])
    filler = (rng.choice(["A", "AAAA", "e30", "-", "é", "."]) * max(size, 0))[: max(size, 0)]
    where = rng.choice(["header", "claims", "signature", "tail"])
    if where == "header":
        return head + filler + "." + claims + "." + signature
    if where == "claims":
        return head + "." + claims + filler + "." + signature
    if where == "signature":
        return head + "." + claims + "." + signature + filler
    return grant.token + filler


KINDS = ["chars"] * 3 + ["bytes"] * 2 + ["reencoded"] * 5 + ["segments"] * 2 + ["long", "text"]


def mutant(rng: random.Random, bench: Bench, grant: Grant, kind: str) -> str:
    if kind == "chars":
        return mutate_text(rng, grant.token, TOKEN_CHARS)
    if kind == "bytes":
        return mutate_bytes(rng, grant.token.encode()).decode("utf-8", "surrogateescape")
    if kind == "reencoded":
        return reencoded(rng, bench, grant)
    if kind == "segments":
        return rearranged(rng, bench, grant)
    if kind == "long":
        return lengthened(rng, grant)
    return random_text(rng, 200)


# ---- the properties -----------------------------------------------------------------------
def check_mutant(bench: Bench, kind: str, grant: Grant, token: str, caller: str | None) -> None:
    with bench.tally.case():
        decision = bench.decide(token, grant, caller)
        assert decision.reason_code != "INTERNAL_ERROR", (token, decision)
        if token == grant.token:
            bench.tally.saw("unchanged")
            if grant.live and caller in (None, grant.subject_id):
                assert decision.allowed, decision  # the oracle itself is sound
            return
        bench.tally.saw(decision.reason_code)
        if decision.allowed:
            same = bench.same_as_issued(token)
            if same is None or same.mandate_id != decision.mandate_id or not same.live:
                raise FalseAllow(f"{kind} mutant allowed: {token!r} -> {decision}")
            bench.tally.saw("same mandate, other spelling")


@given(
    label=st.sampled_from(["root", "child", "agent", "bound", "revoked"]),
    kind=st.sampled_from(KINDS),
    rng=rngs,
    as_subject=st.integers(0, 3),
)
@fuzz_settings(short=10_000)
def test_no_mutant_of_a_valid_token_is_allowed(
    bench: Bench, label: str, kind: str, rng: random.Random, as_subject: int
) -> None:
    grant = bench.world.grants[label]
    token = mutant(rng, bench, grant, kind)
    check_mutant(bench, kind, grant, token, grant.subject_id if as_subject == 0 else None)


# Inputs the fuzzer found, kept forever. Tokens differ from run to run (new keys, new ids), so
# each is kept as a recipe applied to the root mandate's token.
def _kept(bench: Bench) -> list[tuple[str, str]]:
    root = bench.world.grants["root"]
    head, claims, signature = root.token.split(".")

    def with_kid(kid: str) -> str:
        header = json.loads(b64url_decode(head))
        header["kid"] = kid
        return b64url(canonical_bytes(header)) + "." + claims + "." + signature

    def insider_with_jti(jti: str) -> str:  # signed with the issuer's real key
        changed = json.loads(b64url_decode(claims))
        changed["jti"] = jti
        signing_input = head + "." + b64url(canonical_bytes(changed))
        return signing_input + "." + b64url(sign(bench.insider[1], signing_input.encode()))

    return [
        ("root", with_kid("\udcff")),  # INTERNAL_ERROR: the key lookup could not encode it
        ("root", with_kid("k_\ud800")),
        ("root", with_kid("k_\x00")),  # NUL: PostgreSQL refuses it in text parameters
        ("root", insider_with_jti(root.mandate_id + "\ud800")),  # the mandate lookup, likewise
        ("root", insider_with_jti(root.mandate_id + "x")),
    ]


def test_kept_examples_stay_denied(bench: Bench) -> None:
    for label, token in _kept(bench):
        check_mutant(bench, "kept", bench.world.grants[label], token, None)


def test_the_malleable_signature_twin_is_refused(bench: Bench) -> None:
    """`(r, n - s)` verifies under plain ECDSA too; Caracal signs only low-S and accepts only
    low-S, so a token has exactly one valid spelling and the twin is SIGNATURE_INVALID."""
    for grant in bench.world.grants.values():
        head, _, signature = grant.token.rpartition(".")
        raw = b64url_decode(signature)
        s = int.from_bytes(raw[32:], "big")
        assert s <= P256_ORDER // 2  # issued low-S
        twin = head + "." + b64url(raw[:32] + (P256_ORDER - s).to_bytes(32, "big"))
        assert twin != grant.token
        decision = bench.decide(twin, grant, None)
        assert not decision.allowed and decision.reason_code == "SIGNATURE_INVALID", decision


@example(token="")
@given(token=st.text(max_size=64) | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
@fuzz_settings(short=200, long=2_000)
def test_arbitrary_text_is_never_a_mandate(bench: Bench, token: str) -> None:
    check_mutant(bench, "text", bench.world.grants["root"], token, None)
