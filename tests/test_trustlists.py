"""Published trust lists: each format imported whole or refused whole with its reason.

Real data: the shipped snapshot of Germany's production DSC list (829 signers) and its pinned
key. Faithful data: lists of each format made here with keys made here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from keys import ca, hc1
from verifier.policy import builtin_policy
from verifier.trustlists import (
    TrustListAgeError,
    TrustListError,
    TrustListFormatError,
    TrustListRollback,
    TrustListSignatureError,
    austria,
    detect_format,
    dsclist,
    gateway,
    import_list,
)
from verifier.verify import verify

UTC = dt.UTC
SNAPSHOT = Path(__file__).resolve().parent.parent / "verifier/data/snapshots/covpass-2023-12-11"
DE_LIST = SNAPSHOT / "dsc-list.json"
DE_KEY = (SNAPSHOT / "dsc-list-signing-key.pem").read_bytes()
SNAPSHOT_DAY = dt.datetime(2023, 12, 11, tzinfo=UTC)
ES_SAMPLES = Path(__file__).resolve().parent / "data/dcc/ES/2DCode/raw"
NOW = dt.datetime(2026, 6, 1, tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Issuer:
    """A country's CSCA and DSCs made here."""

    def __init__(self, country: str = "VN") -> None:
        self.key = ca.generate_key()
        self.csca = ca.make_csca(self.key, country=country, not_before=NOW - dt.timedelta(days=400))

    def dsc(self, *, days: int = 730, start: dt.datetime | None = None) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        key = ca.generate_key()
        cert = ca.make_dsc(self.csca, self.key, key.public_key(), not_before=start or NOW - dt.timedelta(days=10),
                           days=days)
        return cert.public_bytes(Encoding.DER), key


def _entry(der: bytes, country: str = "VN", *, kid: bytes | None = None, when: str = "2026-05-30T10:00:00+02:00",
           signature: str = "") -> dict:
    return {"certificateType": "DSC", "country": country, "kid": _b64(kid or hashlib.sha256(der).digest()[:8]),
            "rawData": _b64(der), "signature": signature, "thumbprint": hashlib.sha256(der).hexdigest(),
            "timestamp": when}


def _signed_dsc_list(entries: list[dict], key: ec.EllipticCurvePrivateKey) -> bytes:
    body = json.dumps({"certificates": entries}).encode()
    r, s = decode_dss_signature(key.sign(body, ec.ECDSA(hashes.SHA256())))
    return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")) + b"\n" + body


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- Germany's signed DSC list: the real one --------------------------------------------------

def test_real_german_list_imports_with_its_pinned_key():
    imported = dsclist.parse(DE_LIST.read_bytes(), DE_KEY, SNAPSHOT_DAY)
    assert imported.format == "de-dsc-list"
    assert len(imported.signers) + len(imported.refused) == 829
    report = imported.report()
    assert len(report) == 77
    assert report["VN"] == {"taken": 1, "refused": {}}
    assert imported.signers and all(len(s.kid) == 8 for s in imported.signers)
    # At the snapshot's date the only entries left out are DSCs past their end
    assert {r.reason for r in imported.refused} == {"certificate expired"}
    assert imported.issued_at == dt.datetime(2023, 11, 28, 10, 23, 58, tzinfo=UTC)
    vn = [s for s in imported.signers if s.country == "VN"]
    assert _b64(vn[0].kid) == "ZtJVElOdWm0="


def test_real_german_list_refused_with_a_wrong_key():
    with pytest.raises(TrustListSignatureError) as err:
        dsclist.parse(DE_LIST.read_bytes(), _pem(ca.generate_key()), SNAPSHOT_DAY)
    assert err.value.code == "trust_list_signature" and "Danh sách" in err.value.message_vi


def test_real_german_list_refused_when_edited_or_truncated():
    data = DE_LIST.read_bytes()
    edited = data.replace(b'"country": "NL"', b'"country": "VN"', 1)
    assert edited != data
    with pytest.raises(TrustListSignatureError):
        dsclist.parse(edited, DE_KEY, SNAPSHOT_DAY)
    with pytest.raises(TrustListSignatureError):
        dsclist.parse(data[: len(data) // 2], DE_KEY, SNAPSHOT_DAY)
    with pytest.raises(TrustListFormatError):
        dsclist.parse(data.split(b"\n", 1)[0], DE_KEY, SNAPSHOT_DAY)
    with pytest.raises(TrustListError):
        dsclist.parse(b"", DE_KEY, SNAPSHOT_DAY)


def test_real_german_list_refused_as_a_rollback_or_too_old():
    with pytest.raises(TrustListRollback):
        dsclist.parse(DE_LIST.read_bytes(), DE_KEY, SNAPSHOT_DAY,
                      last_import=dt.datetime(2023, 12, 1, tzinfo=UTC))
    with pytest.raises(TrustListAgeError):
        dsclist.parse(DE_LIST.read_bytes(), DE_KEY, SNAPSHOT_DAY + dt.timedelta(days=30),
                      max_age=dt.timedelta(days=14))
    # the same list again (not older than the last import) is fine
    again = dsclist.parse(DE_LIST.read_bytes(), DE_KEY, SNAPSHOT_DAY,
                          last_import=dt.datetime(2023, 11, 28, 10, 23, 58, tzinfo=UTC))
    assert again.signers


@pytest.mark.parametrize("case, when, outcome", [
    ("203", dt.datetime(2022, 1, 15, tzinfo=UTC), ("green", "complete_series")),
    ("201", dt.datetime(2021, 9, 1, tzinfo=UTC), ("green", "recovered")),
    ("201", dt.datetime(2022, 1, 15, tzinfo=UTC), ("red", "cwt_expired")),
])
def test_each_real_spanish_production_certificate(case: str, when: dt.datetime, outcome: tuple[str, str]):
    trust = dsclist.parse(DE_LIST.read_bytes(), DE_KEY, when).trust_store()
    verdict = verify(json.loads((ES_SAMPLES / f"{case}.json").read_text())["PREFIX"], trust, when,
                     builtin_policy("vn-2021"))
    assert (verdict.result, verdict.reason) == outcome


def test_real_production_certificate_verifies_offline_against_the_real_list():
    # Spain's dgc-testdata cases 201-203 are signed by a production DSC of Aragon's health
    # service that Germany's production list carries (kid tCM87WnaaQE=); no Vietnamese
    # production-signed certificate is public (the EU QA sample of VN is signed in acceptance).
    when = dt.datetime(2022, 1, 15, tzinfo=UTC)
    trust = dsclist.parse(DE_LIST.read_bytes(), DE_KEY, when).trust_store()
    case = json.loads((ES_SAMPLES / "203.json").read_text())
    verdict = verify(case["PREFIX"], trust, when, builtin_policy("vn-2021"))
    assert (verdict.result, verdict.kid, verdict.issuer, verdict.cert_type) == ("green", "tCM87WnaaQE=", "ES", "v")
    altered = case["PREFIX"][:-12] + ("A" if case["PREFIX"][-12] != "A" else "B") + case["PREFIX"][-11:]
    assert verify(altered, trust, when, builtin_policy("vn-2021")).result == "red"


# --- Germany's format, made here --------------------------------------------------------------

def test_made_dsc_list_checks_each_entry():
    vn, fr = Issuer("VN"), Issuer("FR")
    good, _ = vn.dsc()
    other, _ = vn.dsc()
    expired, _ = vn.dsc(start=NOW - dt.timedelta(days=100), days=30)
    french, _ = fr.dsc()
    key = ca.generate_key()
    data = _signed_dsc_list([
        _entry(good), _entry(other, kid=b"\x00" * 8), _entry(expired), _entry(french, "DE"),
        {"country": "VN", "kid": "AAAAAAAAAAA=", "rawData": "not base64!"}, _entry(good),
    ], key)
    imported = dsclist.parse(data, _pem(key), NOW)
    assert [s.der for s in imported.signers] == [good]
    assert imported.report() == {
        "VN": {"taken": 1, "refused": {"kid does not match the certificate": 1, "certificate expired": 1,
                                       "entry unreadable": 1, "duplicate": 1}},
        "DE": {"taken": 0, "refused": {"country differs from the certificate's": 1}},
    }
    store = imported.trust_store()
    assert len(store) == 1 and store.find(hashlib.sha256(good).digest()[:8])


def test_made_dsc_list_signed_json_that_is_not_a_list_is_refused():
    key = ca.generate_key()
    body = b'{"nothing": []}'
    r, s = decode_dss_signature(key.sign(body, ec.ECDSA(hashes.SHA256())))
    with pytest.raises(TrustListFormatError):
        dsclist.parse(base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")) + b"\n" + body,
                      _pem(key), NOW)


# --- The DCC gateway's trust list -------------------------------------------------------------

def _upload_cert(country: str = "VN") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ca.generate_key()
    return ca.make_csca(key, country=country, common_name="Upload", not_before=NOW - dt.timedelta(days=5)), key


def _cms(der: bytes, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> str:
    signed = (pkcs7.PKCS7SignatureBuilder().set_data(der).add_signer(cert, key, hashes.SHA256())
              .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    return _b64(signed)


def test_gateway_list_entries_checked_against_the_anchor():
    vn = Issuer("VN")
    upload, upload_key = _upload_cert()
    good, _ = vn.dsc()
    also, _ = vn.dsc()
    swapped, _ = vn.dsc()
    entries = [_entry(good, signature=_cms(good, upload, upload_key)),
               _entry(also, signature=_cms(also, upload, upload_key)),
               _entry(swapped, signature=_cms(good, upload, upload_key))]  # CMS over another cert
    csca_der = vn.csca.public_bytes(Encoding.DER)
    entries.append({**_entry(csca_der, signature=_cms(csca_der, upload, upload_key)), "certificateType": "CSCA"})
    data = json.dumps(entries).encode()
    anchor = upload.public_bytes(Encoding.PEM)
    imported = gateway.parse(data, NOW, anchors=[anchor])
    assert {s.der for s in imported.signers} == {good, also}
    assert imported.report()["VN"]["refused"] == {"CMS digest does not match the certificate": 1,
                                                  "not a document signer (CSCA)": 1}
    # an anchor above the upload certificate counts too
    root_key = ca.generate_key()
    root = ca.make_csca(root_key, common_name="Gateway anchor", not_before=NOW - dt.timedelta(days=5))
    issued = ca.make_dsc(root, root_key, upload_key.public_key(), not_before=NOW - dt.timedelta(days=5))
    imported = gateway.parse(json.dumps([_entry(good, signature=_cms(good, issued, upload_key))]).encode(),
                             NOW, anchors=[root.public_bytes(Encoding.PEM)])
    assert len(imported.signers) == 1
    # without an anchor only the entry checks apply
    assert len(gateway.parse(data, NOW).signers) == 3


def test_gateway_list_refused_whole_with_a_wrong_anchor_or_bad_file():
    vn = Issuer("VN")
    upload, upload_key = _upload_cert()
    other, _ = _upload_cert()
    good, _ = vn.dsc()
    data = json.dumps({"certificates": [_entry(good, signature=_cms(good, upload, upload_key))]}).encode()
    with pytest.raises(TrustListSignatureError):
        gateway.parse(data, NOW, anchors=[other.public_bytes(Encoding.PEM)])
    with pytest.raises(TrustListFormatError):
        gateway.parse(data[:-20], NOW)
    with pytest.raises(TrustListRollback):
        gateway.parse(data, NOW, last_import=NOW)


def test_real_gateway_entry_cms_verifies_with_its_upload_certificate():
    # Each entry of Germany's list keeps the uploading country's CMS signature from the gateway.
    from asn1crypto import cms

    body = DE_LIST.read_bytes().split(b"\n", 1)[1]
    entry = json.loads(body)["certificates"][0]
    signed = cms.ContentInfo.load(base64.b64decode(entry["signature"]))
    upload = x509.load_der_x509_certificate(signed["content"]["certificates"][0].chosen.dump())
    der = base64.b64decode(entry["rawData"])
    assert gateway.check_cms(base64.b64decode(entry["signature"]), der, [upload]) is None
    assert gateway.check_cms(base64.b64decode(entry["signature"]), der + b"x", [upload]) is not None
    wrong, _ = _upload_cert()
    assert gateway.check_cms(base64.b64decode(entry["signature"]), der, [wrong]) == "CMS signer is not a pinned anchor"


# --- Austria's CBOR list with its COSE signature ---------------------------------------------

def _austrian(ders: list[tuple[bytes, bytes]], key: ec.EllipticCurvePrivateKey, *, nbf: dt.datetime,
              exp: dt.datetime) -> tuple[bytes, bytes]:
    data = cbor2.dumps({"c": [{"i": kid, "c": der} for kid, der in ders]})
    claims = cbor2.dumps({2: hashlib.sha256(data).digest(), 4: int(exp.timestamp()), 5: int(nbf.timestamp())})
    return data, hc1.sign1(claims, key, b"trustlist")


def test_austrian_list_imported_and_each_failure_refused():
    vn = Issuer("VN")
    good, _ = vn.dsc()
    bad, _ = vn.dsc()
    key = ca.generate_key()
    nbf, exp = NOW - dt.timedelta(hours=2), NOW + dt.timedelta(hours=46)
    data, sig = _austrian([(hashlib.sha256(good).digest()[:8], good), (b"12345678", bad)], key, nbf=nbf, exp=exp)
    imported = austria.parse(data, sig, _pem(key), NOW)
    assert [s.der for s in imported.signers] == [good] and imported.expires_at is not None
    assert imported.report()["VN"]["refused"] == {"kid does not match the certificate": 1}
    with pytest.raises(TrustListSignatureError):
        austria.parse(data, sig, _pem(ca.generate_key()), NOW)
    with pytest.raises(TrustListSignatureError):  # the list edited after signing
        austria.parse(data.replace(good[-20:], bytes(20)), sig, _pem(key), NOW)
    with pytest.raises(TrustListSignatureError):  # truncated
        austria.parse(data[:-5], sig, _pem(key), NOW)
    with pytest.raises(TrustListFormatError):
        austria.parse(data, sig[:-5], _pem(key), NOW)
    with pytest.raises(TrustListAgeError):
        austria.parse(data, sig, _pem(key), exp + dt.timedelta(minutes=1))
    with pytest.raises(TrustListAgeError):
        austria.parse(data, sig, _pem(key), nbf - dt.timedelta(minutes=1))
    with pytest.raises(TrustListRollback):
        austria.parse(data, sig, _pem(key), NOW, last_import=NOW - dt.timedelta(hours=1))


# --- A folder of certificates, and the one entry point ----------------------------------------

def test_folder_and_detection(tmp_path):
    vn = Issuer("VN")
    pem_der, _ = vn.dsc()
    der, _ = vn.dsc()
    folder = tmp_path / "dscs"
    folder.mkdir()
    (folder / "a.pem").write_bytes(x509.load_der_x509_certificate(pem_der).public_bytes(Encoding.PEM))
    (folder / "b.der").write_bytes(der)
    (folder / "c.crt").write_bytes(b"garbage")
    (folder / "notes.txt").write_text("ignored")
    imported = import_list(folder, NOW)
    assert {s.der for s in imported.signers} == {pem_der, der}
    assert imported.report()["??"]["refused"] == {"certificate unreadable (ValueError)": 1}
    assert detect_format(folder) == "folder"
    assert detect_format(DE_LIST) == "de-dsc-list"
    key = ca.generate_key()
    data, sig = _austrian([(hashlib.sha256(der).digest()[:8], der)], key, nbf=NOW, exp=NOW + dt.timedelta(days=1))
    (tmp_path / "at.cbor").write_bytes(data)
    (tmp_path / "at.cbor.sig").write_bytes(sig)
    assert detect_format(tmp_path / "at.cbor") == "at-cbor"
    assert len(import_list(tmp_path / "at.cbor", NOW, key=_pem(key)).signers) == 1
    (tmp_path / "gw.json").write_text(json.dumps([_entry(der)]))
    assert detect_format(tmp_path / "gw.json") == "dcc-gateway"
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    with pytest.raises(TrustListFormatError):
        import_list(tmp_path / "x.bin", NOW)
    with pytest.raises(TrustListSignatureError):  # a signed list without the key to check it
        import_list(DE_LIST, SNAPSHOT_DAY)
    with pytest.raises(TrustListFormatError):
        import_list(tmp_path / "empty", NOW, fmt="folder")


# --- Bad input: a clear refusal, never a crash ------------------------------------------------

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.sampled_from(["certificates", "kid", "rawData", "country", "timestamp", "signature",
                                          "thumbprint", "x"]), inner, max_size=5), max_leaves=20)
_FUZZ_KEY = ca.generate_key()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_JSON)
def test_signed_lists_of_any_shape_are_imported_or_refused(document) -> None:
    for shape in (document, {"certificates": document}, {"certificates": [document]}):
        body = json.dumps(shape).encode()
        r, s = decode_dss_signature(_FUZZ_KEY.sign(body, ec.ECDSA(hashes.SHA256())))
        data = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")) + b"\n" + body
        for parse, arguments in ((dsclist.parse, (data, _pem(_FUZZ_KEY), NOW)), (gateway.parse, (body, NOW))):
            try:
                imported = parse(*arguments)
            except TrustListError as err:
                assert err.code.startswith("trust_list")
            else:
                assert not imported.signers  # nothing in these documents is a certificate


@settings(max_examples=100, deadline=None)
@given(flip=st.integers(min_value=0), cut=st.integers(min_value=0))
def test_a_damaged_austrian_list_is_refused(flip: int, cut: int) -> None:
    der, _ = _FUZZ_ISSUER.dsc()
    data, sig = _austrian([(hashlib.sha256(der).digest()[:8], der)], _FUZZ_KEY, nbf=NOW, exp=NOW + dt.timedelta(days=1))
    damaged = bytearray(data)
    damaged[flip % len(damaged)] ^= 0x41
    for list_bytes, sig_bytes in ((bytes(damaged), sig), (data, sig[: cut % len(sig)]), (data[: cut % len(data)], sig)):
        with pytest.raises(TrustListError):
            austria.parse(list_bytes, sig_bytes, _pem(_FUZZ_KEY), NOW)


_FUZZ_ISSUER = Issuer("VN")
