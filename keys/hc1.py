"""Encode a DCC as an HC1 string: CWT -> COSE_Sign1 (tag 18) -> zlib -> Base45 -> "HC1:".

Also the reverse unpacking the ministry needs to revoke a certificate it is handed; that side
trusts no input: sizes are capped and every failure is an HC1DecodeError with a reason.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keys.ca import PrivateKey, algorithm_of
from keys.errors import HC1DecodeError
from verifier.base45 import b45decode, b45encode

PREFIX = "HC1:"
COSE_ALGS = {"ES256": -7, "PS256": -37}
COSE_SIGN1_TAG = 18
CWT_ISS, CWT_IAT, CWT_EXP, CWT_HCERT = 1, 6, 4, -260
HEADER_ALG, HEADER_KID = 1, 4
_MAX_INFLATED = 64 * 1024  # far above any real DCC; stops a zlib bomb


def cwt_payload(dcc: dict[str, Any], *, issuer: str, issued_at: dt.datetime, expires_at: dt.datetime) -> bytes:
    """The CBOR Web Token carrying the DCC: {1: iss, 6: iat, 4: exp, -260: {1: dcc}}."""
    return cbor2.dumps({CWT_ISS: issuer, CWT_IAT: int(issued_at.timestamp()),
                        CWT_EXP: int(expires_at.timestamp()), CWT_HCERT: {1: dcc}})


def _signature(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # COSE wants raw r||s, not DER
    # RFC 8230: PSS with MGF1 over SHA-256 and a salt as long as the hash.
    return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


def sign1(payload: bytes, key: PrivateKey, kid: bytes, *, kid_in_protected: bool = True) -> bytes:
    """A tagged COSE_Sign1 over `payload`, alg (and kid by default) in the protected header."""
    alg = algorithm_of(key)
    protected_map: dict[int, Any] = {HEADER_ALG: COSE_ALGS[alg]}
    unprotected: dict[int, Any] = {}
    (protected_map if kid_in_protected else unprotected)[HEADER_KID] = kid
    protected = cbor2.dumps(protected_map)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    signature = _signature(key, to_sign)
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, unprotected, payload, signature]))


def wrap(cose: bytes) -> str:
    """COSE bytes -> zlib -> Base45 -> the "HC1:" string a QR code carries."""
    return PREFIX + b45encode(zlib.compress(cose, 9))


def encode(dcc: dict[str, Any], key: PrivateKey, kid: bytes, *, issuer: str = "VN",
           issued_at: dt.datetime, expires_at: dt.datetime, kid_in_protected: bool = True) -> str:
    """Sign a DCC with a DSC's key and return its HC1 string."""
    payload = cwt_payload(dcc, issuer=issuer, issued_at=issued_at, expires_at=expires_at)
    return wrap(sign1(payload, key, kid, kid_in_protected=kid_in_protected))


@dataclass(frozen=True)
class Unpacked:
    """The parts of an HC1 string the ministry needs (for revocation); holds personal data, never log it."""

    alg: int | None
    kid: bytes | None
    payload: bytes
    signature: bytes
    claims: Mapping[Any, Any]

    @property
    def dcc(self) -> dict[str, Any]:
        """The DCC JSON object inside the CWT."""
        hcert = self.claims.get(CWT_HCERT)
        if not isinstance(hcert, Mapping) or not isinstance(hcert.get(1), Mapping):
            raise HC1DecodeError("the CWT holds no DCC (claim -260/1)")
        return dict(hcert[1])


def unwrap(text: str) -> bytes:
    """Undo `wrap`: the COSE bytes inside an "HC1:" string, inflated to at most 64 KiB.

    :raises HC1DecodeError: naming the step that failed.
    """
    text = text.strip()
    if not text.startswith(PREFIX):
        raise HC1DecodeError("not an HC1 string (missing HC1: prefix)")
    try:
        compressed = b45decode(text[len(PREFIX):])
    except Exception as err:  # noqa: BLE001 - the verifier's Base45Error, or anything odd in the text
        raise HC1DecodeError(f"bad Base45 text: {err}") from None
    inflater = zlib.decompressobj()
    try:
        cose = inflater.decompress(compressed, _MAX_INFLATED)
    except zlib.error as err:
        raise HC1DecodeError(f"not zlib data: {err}") from None
    if inflater.unconsumed_tail:
        raise HC1DecodeError(f"inflates to more than {_MAX_INFLATED} bytes")
    return cose


def unpack(text: str) -> Unpacked:
    """Undo `encode` without checking the signature.

    :raises HC1DecodeError: naming the step that failed.
    """
    cose = unwrap(text)
    try:
        message = cbor2.loads(cose)
        if isinstance(message, cbor2.CBORTag):
            message = message.value
        protected_bytes, unprotected, payload, signature = message
        protected = cbor2.loads(protected_bytes) if protected_bytes else {}
        claims = cbor2.loads(payload)
    except Exception as err:  # noqa: BLE001 - cbor2 raises several types on malformed input
        raise HC1DecodeError(f"not a COSE_Sign1 message: {type(err).__name__}") from None
    # cbor2 6 gives frozendicts inside tags, so test for any mapping.
    if not all(isinstance(m, Mapping) for m in (protected, unprotected, claims)):
        raise HC1DecodeError("COSE headers or CWT claims are not maps")
    if not isinstance(signature, bytes) or not isinstance(payload, bytes):
        raise HC1DecodeError("COSE payload or signature is not a byte string")
    alg = protected.get(HEADER_ALG, unprotected.get(HEADER_ALG))
    kid = protected.get(HEADER_KID, unprotected.get(HEADER_KID))
    return Unpacked(alg=alg if isinstance(alg, int) else None, kid=kid if isinstance(kid, bytes) else None,
                    payload=payload, signature=signature, claims=claims)
