"""Hostile seed inputs: bombs, huge numbers, deep nesting, invalid UTF-8, far dates.

Signed ones use a fixed fuzz signer (deterministic key, fixed kid) that the fuzz trust store
trusts, so the hostile content reaches the steps after the signature check (CWT, CBOR limits,
schema, policy); unsigned ones exercise the decoding steps before it.
"""

from __future__ import annotations

import datetime as dt
import zlib
from functools import lru_cache
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keys import ca, hc1
from verifier.base45 import b45encode
from verifier.trust import SignerKey

FUZZ_KID = b"FUZZkid1"
_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


@lru_cache(maxsize=1)
def fuzz_signer() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A fixed CSCA and DSC (keys derived from constants): the same kid in every run."""
    csca_key = ec.derive_private_key(0xC5CA_F022, ec.SECP256R1())
    dsc_key = ec.derive_private_key(0xD5C_F022, ec.SECP256R1())
    csca = ca.make_csca(csca_key, not_before=_NOT_BEFORE, days=36500)
    dsc = ca.make_dsc(csca, csca_key, dsc_key.public_key(), not_before=_NOT_BEFORE, days=36500)
    return dsc_key, dsc.public_bytes(serialization.Encoding.DER)


def fuzz_signer_key() -> SignerKey:
    """The fuzz DSC as the verifier trusts it."""
    _, der = fuzz_signer()
    return SignerKey.from_certificate(der, kid=FUZZ_KID)


def _person() -> dict[str, Any]:
    return {"fn": "Nguyễn", "fnt": "NGUYEN", "gn": "Văn An", "gnt": "VAN<AN"}


def _vaccination(**over: Any) -> dict[str, Any]:
    entry = {"tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528", "ma": "ORG-100030215",
             "dn": 2, "sd": 2, "dt": "2021-05-01", "co": "VN", "is": "Bộ Y tế",
             "ci": "URN:UVCI:01:VN:FUZZ0000000001#X"}
    entry.update(over)
    return {"ver": "1.3.0", "nam": _person(), "dob": "1980-01-01", "v": [entry]}


def signed_hc1(claims_cbor: bytes) -> bytes:
    """`claims_cbor` signed by the fuzz signer, as HC1 text bytes."""
    key, _ = fuzz_signer()
    return hc1.wrap(hc1.sign1(claims_cbor, key, FUZZ_KID)).encode()


_signed = signed_hc1


def _claims(dcc: Any, iat: int = 1_620_000_000, exp: int = 1_700_000_000) -> bytes:
    return cbor2.dumps({1: "VN", 6: iat, 4: exp, -260: {1: dcc}})


def _deep(depth: int) -> bytes:
    return b"\x81" * depth + b"\x00"  # CBOR: array of array of ... of 0


def _unsigned_cose(payload: bytes) -> bytes:
    protected = cbor2.dumps({1: -7, 4: FUZZ_KID})
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, b"\x00" * 64]))


def _hc1(raw_cose: bytes, level: int = 9) -> bytes:
    return ("HC1:" + b45encode(zlib.compress(raw_cose, level))).encode()


def hostile_claims() -> list[bytes]:
    """Hostile CWT claims (signed by the harness): huge doses, far dates, deep nesting, bad UTF-8."""
    seeds = [_claims(_vaccination(dn=d, sd=d)) for d in (2**64, -1, 0, 10**30, 2**31)]
    seeds += [_claims(_vaccination(dt=w)) for w in ("0001-01-01", "9999-12-31", "2021-02-30",
                                                      "1900-01-01T00:00:00Z", "+275760-09-13")]
    seeds.append(_claims({**_vaccination(), "dob": "9999-12-31"}))
    seeds += [_claims(_vaccination(), iat=i, exp=e) for i, e in
              ((0, 2**62), (-2**62, 2**63 - 1), (2**64, 2**65), (1_700_000_000, 1_600_000_000))]
    seeds.append(_claims({"ver": "1.3.0", "nam": _person(), "dob": "1980-01-01", "v": [cbor2.loads(_deep(200))]}))
    good = _claims(_vaccination())
    seeds.append(good.replace("Nguy".encode(), b"\xff\xfe\xfd\xfc"))  # invalid UTF-8 in a text string
    seeds.append(b"\xbf" * 3000 + b"\xff" * 3000)  # indefinite maps nested deep
    return seeds


def hostile_cose() -> list[bytes]:
    """Hostile COSE bytes (wrapped by the harness): CBOR bombs and deep nesting."""
    return [b"\x9a\xff\xff\xff\xff" + b"\x00" * 16, b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff",
            _deep(5_000), _unsigned_cose(_deep(5_000)), _unsigned_cose(b"\x9b" + b"\xff" * 8)]


def hostile_payloads() -> list[bytes]:
    """Every hostile seed, as the text bytes a QR code would carry."""
    seeds: list[bytes] = []
    # zlib bomb: 5 MB of zeros in about 5 KB (the transport limit is 8192 characters).
    seeds.append(_hc1(b"\x00" * 5_000_000))
    # CBOR bombs: an array claiming 2**32 items, a byte string claiming 2**63 bytes, deep nesting.
    seeds.append(_hc1(b"\x9a\xff\xff\xff\xff" + b"\x00" * 16))
    seeds.append(_hc1(b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff"))
    seeds.append(_hc1(_deep(60_000)))
    seeds.append(_hc1(_unsigned_cose(_deep(5_000))))
    # Signed: hostile content after the signature.
    for dose in (2**64, -1, 0, 10**30, 2**31):
        seeds.append(_signed(_claims(_vaccination(dn=dose, sd=dose))))
    for when in ("0001-01-01", "9999-12-31", "2021-02-30", "1900-01-01T00:00:00Z", "+275760-09-13"):
        seeds.append(_signed(_claims(_vaccination(dt=when))))
    seeds.append(_signed(_claims({**_vaccination(), "dob": "9999-12-31"})))
    for iat, exp in ((0, 2**62), (-2**62, 2**63 - 1), (2**64, 2**65), (1_700_000_000, 1_600_000_000)):
        seeds.append(_signed(_claims(_vaccination(), iat=iat, exp=exp)))
    deep_dcc = _claims({"ver": "1.3.0", "nam": _person(), "dob": "1980-01-01", "v": [cbor2.loads(_deep(200))]})
    seeds.append(_signed(deep_dcc))
    # Invalid UTF-8 inside a signed CBOR text string (major type 3 with bytes that are no UTF-8).
    bad_text = cbor2.dumps(_vaccination()).replace(b"\x66Nguy", b"\x66\xff\xfe\xfd\xfc\xfb")
    seeds.append(_signed(cbor2.dumps({1: "VN", 6: 1_620_000_000, 4: 1_700_000_000}).replace(
        b"\xa3", b"\xa4", 1) + b"\x39\x01\x03\xa1\x01" + bad_text))
    # Invalid UTF-8 and control characters in the transport text itself.
    seeds += [b"HC1:\xff\xfe\x00", b"HC1:" + b"\xc3\x28" * 100, b"\x00" * 64, b"HC1:" + b"A" * 9000]
    return seeds
