"""COSE_Sign1 parsing and signature checking (RFC 9052), as HCERT uses it: ES256 and PS256."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from verifier import cbor
from verifier.errors import AlgorithmUnsupported, BadSignature, CoseError, KidMissing

ES256 = -7
PS256 = -37
ALG_NAMES = {ES256: "ES256", PS256: "PS256"}
COSE_SIGN1_TAG = 18
CWT_TAG = 61
HEADER_ALG = 1
HEADER_KID = 4

_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_PSS = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=32)


_EC_KEY_TYPES: set[type] = set()  # concrete classes already known to be EC public keys

_SIG_STRUCTURE_HEAD = b"\x84\x6aSignature1"  # array(4), text(10) "Signature1"


def _bstr_head(length: int) -> bytes:
    """The CBOR head of a byte string of `length` bytes (major type 2)."""
    if length < 24:
        return bytes((0x40 | length,))
    if length < 0x100:
        return bytes((0x58, length))
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    if length < 0x100000000:
        return b"\x5a" + length.to_bytes(4, "big")
    return b"\x5b" + length.to_bytes(8, "big")


class Sign1(NamedTuple):
    """A parsed COSE_Sign1 message; `alg` and `kid` come from the protected header, else the unprotected."""

    protected_raw: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes
    alg: Any
    kid: bytes | None

    def to_be_signed(self) -> bytes:
        """The Sig_structure bytes the signature covers: ["Signature1", protected, b"", payload]."""
        # Written out by hand: twice as fast as cbor2.dumps of the list, and byte-for-byte equal.
        protected, payload = self.protected_raw, self.payload
        return b"".join((_SIG_STRUCTURE_HEAD, _bstr_head(len(protected)), protected, b"\x40",
                         _bstr_head(len(payload)), payload))


_protected_cache: dict[bytes, Mapping[Any, Any]] = {}
_PROTECTED_CACHE_SIZE = 256


def _decode_protected(raw: bytes) -> Mapping[Any, Any]:
    """Decode a protected header; every certificate from one signer repeats the same bytes."""
    header = _protected_cache.get(raw)
    if header is None:
        header = cbor.loads(raw, "protected header", immutable=True, whole=True)  # shared: read-only
        if type(header) not in cbor.MAP_TYPES:
            raise CoseError("protected header is not a map")
        if len(_protected_cache) >= _PROTECTED_CACHE_SIZE:
            _protected_cache.clear()
        _protected_cache[raw] = header
    return header


def _header(protected: Mapping[Any, Any], unprotected: Mapping[Any, Any], label: int) -> Any:
    value = protected.get(label)
    return unprotected.get(label) if value is None else value


def parse_sign1(data: bytes) -> Sign1:
    """Parse COSE_Sign1 bytes: tagged 18, untagged, or tagged 61 (CWT) around tag 18.

    :raises CoseError: when the structure is not a COSE_Sign1 message.
    :raises CborLimitsError: when the CBOR exceeds the nesting limit.
    """
    item = cbor.loads(data, "COSE")
    size = 1  # the array head
    if type(item) is cbor2.CBORTag and item.tag == CWT_TAG:
        item, size = item.value, size + 2
    if type(item) is cbor2.CBORTag:
        if item.tag != COSE_SIGN1_TAG:
            raise CoseError(f"unexpected CBOR tag {item.tag}")
        item, size = item.value, size + 1
    if type(item) not in (list, tuple) or len(item) != 4:
        raise CoseError("not a four-element COSE_Sign1 array")
    protected_raw, unprotected, payload, signature = item
    if type(protected_raw) is not bytes or type(payload) is not bytes:
        raise CoseError("protected header or payload is not a byte string")
    if type(signature) is not bytes:
        raise CoseError("signature is not a byte string")
    if type(unprotected) not in cbor.MAP_TYPES and not isinstance(unprotected, Mapping):
        raise CoseError("unprotected header is not a map")
    # Nothing may ride along unsigned after the message. The shortest encoding of what was read
    # filling the input proves there is no tail; otherwise let the decoder say where it ends.
    size += (cbor.head_size(len(protected_raw)) + len(protected_raw) + cbor.head_size(len(payload))
             + len(payload) + cbor.head_size(len(signature)) + len(signature))
    header_size = cbor.shortest_size(unprotected) if unprotected else 1
    if header_size < 0 or size + header_size != len(data):
        cbor.loads(data, "COSE", whole=True)
    protected = _decode_protected(protected_raw) if protected_raw else {}
    try:
        alg = _header(protected, unprotected, HEADER_ALG)
        kid = _header(protected, unprotected, HEADER_KID)
    except TypeError as err:  # unhashable keys cannot occur in cbor2 maps, but stay safe
        raise CoseError(str(err)) from err
    if kid is not None and not isinstance(kid, bytes):
        raise CoseError("kid is not a byte string")
    return Sign1(protected_raw, protected, unprotected, payload, signature, alg, kid or None)


def check_alg(msg: Sign1) -> int:
    """Return the algorithm when it is ES256 or PS256.

    :raises AlgorithmUnsupported: for any other or a missing algorithm.
    """
    if type(msg.alg) is not int or msg.alg not in ALG_NAMES:
        raise AlgorithmUnsupported(f"alg {msg.alg!r}")
    return msg.alg


def require_kid(msg: Sign1) -> bytes:
    """Return the kid, which locates the signer in the trust store.

    :raises KidMissing: when neither header has one.
    """
    if not msg.kid:
        raise KidMissing()
    return msg.kid


def _der_length(length: int) -> bytes:
    return bytes((length,)) if length < 0x80 else bytes((0x81, length)) if length < 0x100 else \
        b"\x82" + length.to_bytes(2, "big")


def der_signature(raw: bytes, size: int) -> bytes:
    """The DER ECDSA-Sig-Value of a raw r||s signature with halves of `size` bytes.

    Byte-for-byte what cryptography's encode_dss_signature gives, without two big integers:
    each INTEGER in its shortest form, with a 0 byte before a set high bit.
    """
    r = raw[:size].lstrip(b"\0") or b"\0"
    s = raw[size:].lstrip(b"\0") or b"\0"
    if r[0] & 0x80:
        r = b"\0" + r
    if s[0] & 0x80:
        s = b"\0" + s
    if len(r) + len(s) < 0x7C:  # every length fits one byte (P-256 and P-384 signatures)
        return b"".join((bytes((0x30, len(r) + len(s) + 4, 0x02, len(r))), r, bytes((0x02, len(s))), s))
    body = b"".join((b"\x02", _der_length(len(r)), r, b"\x02", _der_length(len(s)), s))
    return b"\x30" + _der_length(len(body)) + body


def verify_signature(msg: Sign1, public_key: Any) -> None:
    """Check the signature of `msg` with a signer's public key.

    ECDSA signatures are raw r||s; the hash is SHA-256 as ES256 says, whatever the curve
    (some issuers sign ES256 with P-384 keys). PS256 is RSASSA-PSS, MGF1-SHA256, salt 32.

    :raises BadSignature: when the signature does not verify or does not fit the key.
    :raises AlgorithmUnsupported: when the key type does not match the algorithm.
    """
    alg = check_alg(msg)
    data = msg.to_be_signed()
    sig = msg.signature
    try:
        if alg == ES256:
            if type(public_key) not in _EC_KEY_TYPES:
                if not isinstance(public_key, ec.EllipticCurvePublicKey):
                    raise AlgorithmUnsupported("ES256 with a non-EC key")
                _EC_KEY_TYPES.add(type(public_key))  # isinstance on the ABC costs more than the rest
            size = (public_key.curve.key_size + 7) // 8
            if len(sig) != 2 * size:
                raise BadSignature(f"ECDSA signature of {len(sig)} bytes, expected {2 * size}")
            public_key.verify(der_signature(sig, size), data, _ECDSA_SHA256)
        else:
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise AlgorithmUnsupported("PS256 with a non-RSA key")
            public_key.verify(sig, data, _PSS, _SHA256)
    except InvalidSignature as err:
        raise BadSignature("signature does not verify") from err
    except ValueError as err:  # e.g. r or s out of range
        raise BadSignature(str(err)) from err
