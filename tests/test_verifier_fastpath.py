"""The verifier's hot-path shortcuts give exactly what the plain way gives: COSE framing, HMAC, verdicts."""

from __future__ import annotations

import datetime as dt
import hmac
import random
from dataclasses import fields

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from keys import ca, dcc, hc1
from keys.people import synthetic_person
from verifier import TrustStore, Verdict, VerifyOptions, cose, verify
from verifier.cbor import shortest_size
from verifier.errors import CoseError
from verifier.policy import builtin_policy
from verifier.verify import keyed_uci_hash

UTC = dt.timezone.utc
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    key = ca.generate_key()
    csca_key = ca.generate_key()
    csca = ca.make_csca(csca_key, not_before=NOW - dt.timedelta(days=365))
    cert = ca.make_dsc(csca, csca_key, key.public_key(), not_before=NOW - dt.timedelta(days=100))
    return key, cert.public_bytes(Encoding.DER), ca.kid_of(cert)


def cwt(rng: random.Random) -> bytes:
    document = dcc.vaccination(synthetic_person(rng), 2, 2, "2021-08-01", "pfizer", uci=dcc.new_uci(rng))
    return hc1.cwt_payload(document, issuer="VN", issued_at=NOW - dt.timedelta(days=1),
                           expires_at=NOW + dt.timedelta(days=30))


@pytest.mark.parametrize("kid_in_protected", [True, False])
def test_a_byte_after_the_cose_message_is_refused(signer, kid_in_protected: bool) -> None:
    key, _, kid = signer
    message = hc1.sign1(cwt(random.Random(1)), key, kid, kid_in_protected=kid_in_protected)
    assert cose.parse_sign1(message).kid == kid
    for tail in (b"\x00", b"\xa0", b"\x40" * 3):
        with pytest.raises(CoseError, match="after the CBOR item"):
            cose.parse_sign1(message + tail)
    wrapped = b"\xd8\x3d" + message  # tag 61 around tag 18
    assert cose.parse_sign1(wrapped).payload == cose.parse_sign1(message).payload
    with pytest.raises(CoseError, match="after the CBOR item"):
        cose.parse_sign1(wrapped + b"\xf6")


def test_longer_than_needed_cbor_heads_are_still_read_whole(signer) -> None:
    key, _, kid = signer
    message = hc1.sign1(cwt(random.Random(2)), key, kid)
    plain = cose.parse_sign1(message)
    assert message[:2] == b"\xd2\x84"
    padded = b"\xd2\x98\x04" + message[2:]  # the array head in two bytes: valid CBOR, not shortest
    again = cose.parse_sign1(padded)
    assert (again.payload, again.signature, again.kid, again.alg) == (plain.payload, plain.signature, kid, plain.alg)
    with pytest.raises(CoseError, match="after the CBOR item"):
        cose.parse_sign1(padded + b"\x00")


def test_shortest_size_is_the_length_cbor2_encodes() -> None:
    rng = random.Random(9)
    values = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, -1, -24, -25, -(2**64),
              b"", b"x" * 23, b"x" * 24, b"y" * 300, "", "Nguyễn", "a" * 70000, None, True, False, [], {},
              [1, b"ab", {4: b"kid"}], cbor2.CBORTag(18, [b"\xa1\x01&", {}, b"p", b"s" * 64])]
    values += [bytes(rng.randrange(256) for _ in range(rng.randrange(600))) for _ in range(50)]
    for value in values:
        assert shortest_size(value) == len(cbor2.dumps(value)), repr(value)[:40]
    assert shortest_size(1.5) == -1 and shortest_size(2**64) == -1


def test_keyed_uci_hash_is_hmac_sha256_for_any_key_length() -> None:
    for length in (1, 13, 63, 64, 65, 200):
        key = bytes(range(length % 256)) * (length // 256 + 1)
        key = key[:length]
        for uci in ("URN:UVCI:01:VN:8F3A9C#K", "", "ÄÖ:ẞ"):
            assert keyed_uci_hash(uci, key) == hmac.digest(key, uci.encode(), "sha256").hex()
            assert keyed_uci_hash(uci, key) == keyed_uci_hash(uci, key)  # the cached pads are not consumed


def test_a_green_verdict_carries_every_field(signer) -> None:
    key, der, kid = signer
    payload = hc1.encode(dcc.vaccination(synthetic_person(random.Random(3)), 2, 2, "2021-08-01", "pfizer"),
                         key, kid, issued_at=NOW - dt.timedelta(days=1), expires_at=NOW + dt.timedelta(days=30))
    verdict = verify(payload, TrustStore.from_certificates([der], version=4), NOW, builtin_policy(),
                     VerifyOptions(uci_key=b"k"))
    assert verdict.result == "green", verdict.error_detail
    assert "holder" not in vars(verdict) and "holder" not in repr(verdict)  # made when first read
    assert verdict.uci_hash == keyed_uci_hash(dcc_of(payload)["v"][0]["ci"], b"k")
    assert set(vars(verdict)) == {f.name for f in fields(Verdict)}  # every field made at once
    assert verdict == Verdict(**{f.name: getattr(verdict, f.name) for f in fields(Verdict)})
    assert verdict.trust_version == 4 and verdict.error_detail == "" and verdict.detail["dn"] == 2
    assert verdict.issued_at == NOW - dt.timedelta(days=1) and verdict.holder.dob
    assert verdict.to_json()["holder"]["family_name"] == verdict.holder.family_name
    with pytest.raises(AttributeError):
        verdict.result = "red"  # type: ignore[misc]  # the assignment must fail: still frozen
    with pytest.raises(AttributeError):
        verdict.colour  # noqa: B018 - only the described fields are made on demand


def dcc_of(payload: str) -> dict:
    return cbor2.loads(cose.parse_sign1(hc1.unwrap(payload)).payload)[-260][1]


def test_a_red_verdict_after_the_signature_still_shows_who_it_is(signer) -> None:
    key, der, kid = signer
    payload = hc1.encode(dcc.vaccination(synthetic_person(random.Random(4)), 2, 2, "2021-08-01", "pfizer"),
                         key, kid, issued_at=NOW - dt.timedelta(days=60), expires_at=NOW - dt.timedelta(days=1))
    verdict = verify(payload, TrustStore.from_certificates([der]), NOW, builtin_policy(), VerifyOptions(uci_key=b"k"))
    assert (verdict.result, verdict.reason) == ("red", "cwt_expired")
    assert set(vars(verdict)) == {f.name for f in fields(Verdict)}  # a red verdict is made whole at once
    assert verdict.holder.dob == dcc_of(payload)["dob"] and verdict.detail["sd"] == 2 and verdict.uci_hash
    assert verdict.expires_at == NOW - dt.timedelta(days=1)


def test_der_signature_is_what_cryptography_encodes() -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    rng = random.Random(11)
    for size in (32, 48, 66):
        specials = [bytes(size), b"\x00" * (size - 1) + b"\x01", b"\xff" * size, b"\x80" + bytes(size - 1),
                    b"\x00\x80" + bytes(size - 2), b"\x00\x7f" + b"\xff" * (size - 2)]
        halves = specials + [bytes(rng.randrange(256) for _ in range(size)) for _ in range(300)]
        for _ in range(400):
            r, s = rng.choice(halves), rng.choice(halves)
            expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            assert cose.der_signature(r + s, size) == expected


def reference_b45decode(text: str) -> bytes:
    """RFC 9285 decoding one group at a time: the plain way the fast decoder must agree with."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    out = bytearray()
    for start in range(0, len(text), 3):
        group = [alphabet.index(ch) for ch in text[start:start + 3]]
        value = sum(digit * 45 ** i for i, digit in enumerate(group))
        out += value.to_bytes(2 if len(group) == 3 else 1, "big")
    return bytes(out)


def test_base45_decoding_agrees_with_the_plain_way_on_random_bytes() -> None:
    from verifier.base45 import b45decode, b45encode

    rng = random.Random(45)
    for length in [*range(0, 40), 299, 300, 541, 1000, 4000]:
        data = bytes(rng.randrange(256) for _ in range(length))
        text = b45encode(data)
        assert b45decode(text) == reference_b45decode(text) == data
