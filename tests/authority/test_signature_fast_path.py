"""`keys.verify` checks the low-S rule on the signature's bytes and builds the DER form
OpenSSL reads from them, without a round trip through int; every signature, valid or not,
gets the same answer as the int-based reading it replaced."""

from __future__ import annotations

import random

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from caracal.core import keys

ORDER = keys._ORDER
HALF = ORDER // 2
KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = KEY.public_key()


def reference(public: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    """`verify` as it was: r and s read as ints, `encode_dss_signature` for the DER."""
    if len(signature) != keys.SIGNATURE_BYTES:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not 0 < s <= HALF:
        return False
    try:
        public.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def raw(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


EDGES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, HALF - 1, HALF, HALF + 1, ORDER - 1, ORDER]
EDGES += [ORDER + 1, 2**255 - 1, 2**255, 2**256 - 1, 2**248, 2**248 - 1, 2**247]


def test_der_is_what_encode_dss_signature_makes() -> None:
    rng = random.Random(31)
    numbers = EDGES + [rng.getrandbits(rng.choice([8, 64, 248, 255, 256])) for _ in range(2_000)]
    for r in numbers:
        for s in rng.sample(numbers, 10) + EDGES:
            as_bytes = raw(r, s)
            assert keys.der_signature(as_bytes[:32], as_bytes[32:]) == encode_dss_signature(r, s)


def test_signatures_and_their_mutants_get_the_same_answer() -> None:
    rng = random.Random(37)
    for i in range(150):
        data = f"message {i}".encode()
        good = keys.sign(KEY, data)
        r, s = int.from_bytes(good[:32], "big"), int.from_bytes(good[32:], "big")
        mutants = [
            good,
            raw(r, ORDER - s),  # the high-S twin
            raw(r, 0),
            raw(0, s),
            raw(r, HALF),
            raw(r, HALF + 1),
            raw(ORDER - r, s),
            raw(r + ORDER, s) if r + ORDER < 2**256 else raw(r, s ^ 1),
            good[:-1],
            good + b"\x00",
            b"",
            bytes(64),
            b"\xff" * 64,
        ]
        for _ in range(8):
            flipped = bytearray(good)
            flipped[rng.randrange(64)] ^= 1 << rng.randrange(8)
            mutants.append(bytes(flipped))
        for signature in mutants:
            for message in (data, data + b"!"):
                assert keys.verify(PUBLIC, message, signature) == reference(
                    PUBLIC, message, signature
                ), signature.hex()
        assert keys.verify(PUBLIC, data, good)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=60, max_size=68))
def test_arbitrary_bytes_get_the_same_answer(signature: bytes) -> None:
    assert keys.verify(PUBLIC, b"x", signature) == reference(PUBLIC, b"x", signature)
