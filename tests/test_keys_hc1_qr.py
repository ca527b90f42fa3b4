"""CSCA/DSC extensions, HC1 structure (COSE_Sign1, CWT, ES256/PS256) and QR rendering."""

from __future__ import annotations

import datetime as dt
import zlib

import cbor2
import cv2
import numpy as np
import pytest
import zxingcpp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import ca, dcc, hc1, qr
from keys.errors import HC1DecodeError, KeysError
from keys.people import Person
from verifier import SignerKey
from verifier.base45 import b45decode, b45encode

NOW = dt.datetime(2021, 10, 1, 12, tzinfo=dt.timezone.utc)
PERSON = Person(family_name="Trần", given_name="Thị Hoa", dob="1978-11-02")


@pytest.fixture(scope="module")
def csca() -> tuple[ca.PrivateKey, x509.Certificate]:
    key = ca.generate_key()
    return key, ca.make_csca(key, not_before=NOW - dt.timedelta(days=30))


def test_csca_is_a_root_that_signs_only_certificates(csca) -> None:
    key, cert = csca
    ext = cert.extensions
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    cert.verify_directly_issued_by(cert)


@pytest.mark.parametrize("types", [("v", "t", "r"), ("v",), ("t",), ("r",), ("t", "r")])
def test_dsc_extensions_and_types(csca, types) -> None:
    csca_key, csca_cert = csca
    dsc_key = ca.generate_key()
    cert = ca.make_dsc(csca_cert, csca_key, dsc_key.public_key(), types=types, not_before=NOW)
    cert.verify_directly_issued_by(csca_cert)
    ext = cert.extensions
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == csca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {oid.dotted_string for oid in eku} == {f"1.3.6.1.4.1.1847.2021.1.{'tvr'.index(t) + 1}" for t in types}
    assert set(ca.dsc_types(cert)) == set(types)
    # The verifier reads the same restriction from the DER.
    der = cert.public_bytes(serialization.Encoding.DER)
    assert SignerKey.from_certificate(der).types == frozenset(types)
    assert ca.kid_of(cert) == SignerKey.from_certificate(der).kid


def test_dsc_rejects_unknown_types_and_curves(csca) -> None:
    csca_key, csca_cert = csca
    with pytest.raises(KeysError, match="v, t, r"):
        ca.make_dsc(csca_cert, csca_key, ca.generate_key().public_key(), types=["x"])
    with pytest.raises(KeysError, match="P-256"):
        ca.make_dsc(csca_cert, csca_key, ec.generate_private_key(ec.SECP384R1()).public_key())


def _decode(text: str) -> tuple[cbor2.CBORTag, dict, dict]:
    assert text.startswith("HC1:")
    message = cbor2.loads(zlib.decompress(b45decode(text[4:])))
    assert isinstance(message, cbor2.CBORTag) and message.tag == 18
    protected = cbor2.loads(message.value[0])
    return message, protected, cbor2.loads(message.value[2])


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_hc1_structure_and_signature(csca, alg: str) -> None:
    csca_key, csca_cert = csca
    key = ca.generate_key(alg)
    cert = ca.make_dsc(csca_cert, csca_key, key.public_key(), not_before=NOW)
    document = dcc.vaccination(PERSON, 2, 2, "2021-09-01", "astrazeneca")
    text = hc1.encode(document, key, ca.kid_of(cert), issued_at=NOW, expires_at=NOW + dt.timedelta(days=365))
    message, protected, claims = _decode(text)
    assert protected == {1: hc1.COSE_ALGS[alg], 4: ca.kid_of(cert)}
    assert dict(message.value[1]) == {}
    assert claims == {1: "VN", 6: int(NOW.timestamp()), 4: int(NOW.timestamp()) + 365 * 86400, -260: {1: document}}
    to_sign = cbor2.dumps(["Signature1", message.value[0], b"", message.value[2]])
    signature = message.value[3]
    if alg == "ES256":
        assert len(signature) == 64  # raw r||s, not DER
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        key.public_key().verify(der, to_sign, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        key.public_key().verify(signature, to_sign, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


def test_kid_can_go_in_the_unprotected_header(csca) -> None:
    key = ca.generate_key()
    text = hc1.encode(dcc.recovery(PERSON, "2021-08-01"), key, b"12345678", issued_at=NOW,
                      expires_at=NOW + dt.timedelta(days=1), kid_in_protected=False)
    message, protected, _ = _decode(text)
    assert protected == {1: -7} and dict(message.value[1]) == {4: b"12345678"}
    assert hc1.unpack(text).kid == b"12345678"


@pytest.mark.parametrize("text, reason", [
    ("hello", "prefix"), ("HC1:~~~", "Base45"), ("HC1:" + b45encode(b"plain"), "zlib"),
    ("HC1:" + b45encode(zlib.compress(b"\x00" * 200_000)), "more than"),
    ("HC1:" + b45encode(zlib.compress(b"\xff\xff")), "COSE"),
])
def test_unpack_gives_reasons(text: str, reason: str) -> None:
    with pytest.raises(HC1DecodeError, match=reason):
        hc1.unpack(text)


def test_qr_png_and_greyscale_decode_back_at_level_q(csca) -> None:
    key = ca.generate_key()
    text = hc1.encode(dcc.vaccination(PERSON, 1, 2, "2021-09-01", "sinopharm"), key, b"abcdefgh",
                      issued_at=NOW, expires_at=NOW + dt.timedelta(days=30))
    image = qr.greyscale(text, scale=3)
    assert image.dtype == np.uint8 and image.ndim == 2 and set(np.unique(image)) == {0, 255}
    found = zxingcpp.read_barcodes(image)
    assert [r.text for r in found] == [text] and found[0].ec_level == "Q"
    png = cv2.imdecode(np.frombuffer(qr.png_bytes(text), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert [r.text for r in zxingcpp.read_barcodes(png)] == [text]


def test_qr_refuses_empty_and_oversized_text() -> None:
    with pytest.raises(KeysError, match="nothing"):
        qr.png_bytes("")
    with pytest.raises(KeysError, match="do not fit"):
        qr.png_bytes("HC1:" + "A" * 5000)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=300).map(lambda b: "HC1:" + b45encode(b)),
                 st.binary(max_size=300).map(lambda b: "HC1:" + b45encode(zlib.compress(b)))))
def test_unpack_only_ever_raises_its_own_error(text: str) -> None:
    try:
        hc1.unpack(text)
    except HC1DecodeError:
        pass
