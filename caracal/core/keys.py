"""ES256 (ECDSA P-256 with SHA-256) key pairs, raw r||s signatures, and key ids."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_CURVE = ec.SECP256R1()
_ALG = ec.ECDSA(hashes.SHA256())
# RFC 6979: the nonce is derived from the key and message, so a weak random source at signing
# time can never leak the private key.
_SIGN = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
SIGNATURE_BYTES = 64
# The order of P-256's base point. ECDSA accepts (r, s) and (r, n - s) alike; only the low-S
# form (s <= n/2) is produced and accepted, so a signature has exactly one valid spelling.
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = _ORDER // 2
_HALF_ORDER_BYTES = _HALF_ORDER.to_bytes(32, "big")
_ZERO = bytes(32)


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_der: bytes  # PKCS#8 DER; goes only into the vault
    public_pem: str  # SubjectPublicKeyInfo PEM; stored in the clear


def new_kid() -> str:
    return "k_" + secrets.token_hex(8)


def generate_key_pair(private: ec.EllipticCurvePrivateKey | None = None) -> KeyPair:
    """A new key pair (or the pair of a given private key, e.g. a derived one in tests)."""
    private = private or ec.generate_private_key(_CURVE)
    private_der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return KeyPair(new_kid(), private_der, public_pem)


def pem_sha256(public_pem: str) -> str:
    """What the ledger records of a public key: the SHA-256 of its PEM text as stored."""
    return hashlib.sha256(public_pem.encode("ascii", "replace")).hexdigest()


def load_private(der: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _CURVE.name:
        raise ValueError("not a P-256 private key")
    return key


def load_public(pem: str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVE.name:
        raise ValueError("not a P-256 public key")
    return key


def sign(private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A raw r||s signature in its low-S form."""
    r, s = decode_dss_signature(private.sign(data, _SIGN))
    if s > _HALF_ORDER:
        s = _ORDER - s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(public: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES:
        return False
    s = signature[32:]
    # Big-endian numbers of one length compare as their bytes do.
    if not _ZERO < s <= _HALF_ORDER_BYTES:  # the high-S twin of a valid signature is refused
        return False
    try:
        public.verify(der_signature(signature[:32], s), data, _ALG)
    except InvalidSignature:
        return False
    return True


def der_signature(r: bytes, s: bytes) -> bytes:
    """The DER form OpenSSL verifies (`encode_dss_signature`) of two 32-byte big-endian
    numbers, built from their bytes without a round trip through int."""
    body = _der_integer(r) + _der_integer(s)
    return b"\x30" + bytes((len(body),)) + body


def _der_integer(value: bytes) -> bytes:
    value = value.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return b"\x02" + bytes((len(value),)) + value


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: the alphabet only, and one spelling per byte string
    (the unused low bits of the last character must be zero)."""
    if not isinstance(text, str):
        raise ValueError("invalid base64url")
    size = len(text) % 4
    if not text or size == 1 or not text.isascii():
        raise ValueError("invalid base64url")
    # `+`, `/` and `=` are mapped to a character strict mode refuses.
    standard = text.encode("ascii").translate(_TO_STANDARD)
    if size:
        if _UNUSED_BITS[size] & _VALUE.get(text[-1], 0):
            raise ValueError("non-canonical base64url")
        standard += b"==" if size == 2 else b"="
    try:
        return binascii.a2b_base64(standard, strict_mode=True)
    except binascii.Error:
        raise ValueError("invalid base64url") from None


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
# A last character carrying 4 (2 leftover chars) or 2 (3 leftover chars) data bits.
_UNUSED_BITS = {2: 0b1111, 3: 0b11}
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
