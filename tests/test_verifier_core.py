"""The verifier pipeline step by step: real keys, real COSE, every failure red with its reason."""

from __future__ import annotations

import datetime as dt
import tracemalloc
import zlib
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from keys import ca, dcc, hc1
from keys.people import Person
from verifier import TrustStore, VerifyOptions, verify
from verifier.base45 import b45encode
from verifier.errors import VerificationError, ZlibBomb
from verifier.hcert import inflate
from verifier.revocation import countrycode_uci_hash, signature_hash, uci_hash
from verifier.trust import SignerKey, lenient_eku_oids

UTC = dt.timezone.utc
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
PERSON = Person(family_name="Nguyễn", given_name="Thị Lan", dob="1990-05-17",
                family_name_t="NGUYEN", given_name_t="THI<LAN")


class AcceptAll:
    """A policy for pipeline tests: every certificate that reaches the policy is green."""

    name = "accept-all"

    on_untrusted_clock = "warn"

    max_trust_age = None

    def decide(self, dcc_: object, now: dt.datetime) -> tuple[str, str, str, str]:
        return "green", "valid", "Valid certificate.", "Chứng nhận hợp lệ."


POLICY = AcceptAll()


def der(cert) -> bytes:
    return cert.public_bytes(Encoding.DER)


def vaccination(uci: str = "URN:UVCI:01:VN:TESTCORE0001#X") -> dict:
    return dcc.vaccination(PERSON, 2, 2, "2021-08-01", "pfizer", uci=uci)


def issue(signer, document=None, *, kid=None, iat=NOW - dt.timedelta(days=1),
          exp=NOW + dt.timedelta(days=300)) -> str:
    return hc1.encode(document or vaccination(), signer.key, kid or signer.kid,
                      issued_at=iat, expires_at=exp)


def cose_of(text: str) -> bytes:
    return hc1.unwrap(text)


def sign_raw(signer, protected: dict, payload: bytes, unprotected: dict | None = None,
             tag: bool = True) -> bytes:
    """A COSE_Sign1 with chosen headers, signed ES256 by `signer`."""
    protected_bytes = cbor2.dumps(protected) if protected else b""
    to_sign = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(signer.key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
    message = [protected_bytes, unprotected or {}, payload, r.to_bytes(32, "big") + s.to_bytes(32, "big")]
    return cbor2.dumps(cbor2.CBORTag(18, message) if tag else message)


def claims(document=None) -> bytes:
    return hc1.cwt_payload(document or vaccination(), issuer="VN", issued_at=NOW - dt.timedelta(days=1),
                           expires_at=NOW + dt.timedelta(days=300))


@pytest.fixture(scope="module")
def store(ministry) -> TrustStore:
    return TrustStore.from_certificates([der(s.certificate) for s in ministry.dscs.values()])


def test_valid_certificate_is_green_with_holder_details(ministry, store):
    verdict = verify(issue(ministry.general), store, NOW, POLICY, VerifyOptions(uci_key=b"unit-secret"))
    assert (verdict.result, verdict.reason) == ("green", "valid")
    assert verdict.holder.family_name == "Nguyễn" and verdict.holder.given_name_t == "THI<LAN"
    assert verdict.holder.dob == "1990-05-17"
    assert verdict.cert_type == "v"
    assert verdict.detail["dn"] == 2 and verdict.detail["sd"] == 2 and verdict.detail["mp"] == "EU/1/20/1528"
    assert verdict.issuer == "VN" and verdict.policy == "accept-all"
    assert verdict.issued_at == NOW - dt.timedelta(days=1)
    assert verdict.uci_hash is not None and len(verdict.uci_hash) == 64 and "UVCI" not in verdict.uci_hash
    assert set(verdict.event_fields()) == {"result", "reason", "policy", "trust_version"}


def test_uci_hash_is_keyed_per_unit(ministry, store):
    text = issue(ministry.general)
    a = verify(text, store, NOW, POLICY, VerifyOptions(uci_key=b"unit-a")).uci_hash
    b = verify(text, store, NOW, POLICY, VerifyOptions(uci_key=b"unit-b")).uci_hash
    assert a != b and a == verify(text, store, NOW, POLICY, VerifyOptions(uci_key=b"unit-a")).uci_hash
    assert verify(text, store, NOW, POLICY).uci_hash is None


def test_every_single_byte_flip_of_the_signed_message_is_red(ministry, store):
    cose = cose_of(issue(ministry.general))
    reasons = set()
    for index in range(len(cose)):
        forged = bytearray(cose)
        forged[index] ^= 0x01
        verdict = verify(hc1.wrap(bytes(forged)), store, NOW, POLICY)
        assert verdict.result == "red", f"flip at byte {index} was accepted"
        assert verdict.message_en and verdict.message_vi
        reasons.add(verdict.reason)
    assert "signature" in reasons


def test_unknown_kid_is_red(ministry, store):
    verdict = verify(issue(ministry.rogue), store, NOW, POLICY)
    assert verdict.reason == "kid_unknown" and verdict.holder is None


def test_wrong_key_behind_a_known_kid_is_red(ministry, store):
    verdict = verify(issue(ministry.rogue, kid=ministry.general.kid), store, NOW, POLICY)
    assert verdict.reason == "signature"
    assert verdict.holder is None  # unauthenticated data is never shown


@pytest.mark.parametrize("start, days, reason", [
    (NOW - dt.timedelta(days=800), 400, "dsc_expired"),
    (NOW + dt.timedelta(days=3), 400, "dsc_not_yet_valid"),
])
def test_signer_outside_its_validity_is_red(ministry, start, days, reason):
    key = ca.generate_key()
    cert = ca.make_dsc(ministry.csca, ministry.csca_key, key.public_key(), not_before=start, days=days)
    text = hc1.encode(vaccination(), key, ca.kid_of(cert), issued_at=NOW - dt.timedelta(days=1),
                      expires_at=NOW + dt.timedelta(days=30))
    verdict = verify(text, TrustStore.from_certificates([der(cert)]), NOW, POLICY)
    assert verdict.reason == reason


def test_signer_restricted_to_tests_cannot_sign_vaccinations(ministry, store):
    verdict = verify(issue(ministry.dscs["test"]), store, NOW, POLICY)
    assert verdict.reason == "key_usage"


@pytest.mark.parametrize("iat, exp, skew, reason", [
    (NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=1), 0, "cwt_expired"),
    (NOW + dt.timedelta(hours=2), NOW + dt.timedelta(days=300), 300, "cwt_not_yet_valid"),
    (NOW + dt.timedelta(minutes=4), NOW + dt.timedelta(days=300), 300, "valid"),
    (NOW + dt.timedelta(minutes=4), NOW + dt.timedelta(days=300), 0, "cwt_not_yet_valid"),
    (NOW - dt.timedelta(days=400), NOW - dt.timedelta(minutes=2), 300, "valid"),
    # Issued after it expires: inside the skew on both sides, and still valid at no time.
    (NOW + dt.timedelta(minutes=1), NOW - dt.timedelta(minutes=1), 300, "cwt"),
])
def test_cwt_times_with_clock_skew(ministry, store, iat, exp, skew, reason):
    text = issue(ministry.general, iat=iat, exp=exp)
    verdict = verify(text, store, NOW, POLICY, VerifyOptions(clock_skew=dt.timedelta(seconds=skew)))
    assert verdict.reason == reason


def test_unsupported_algorithm_is_red(ministry, store):
    for alg in (-35, -8, 1, "ES256", None):
        protected = {4: ministry.general.kid} if alg is None else {1: alg, 4: ministry.general.kid}
        text = hc1.wrap(sign_raw(ministry.general, protected, claims()))
        assert verify(text, store, NOW, POLICY).reason == "alg_unsupported", alg


def test_missing_kid_is_red(ministry, store):
    text = hc1.wrap(sign_raw(ministry.general, {1: -7}, claims()))
    assert verify(text, store, NOW, POLICY).reason == "kid_missing"


@pytest.mark.parametrize("shape", ["untagged", "cwt_tag", "kid_unprotected", "all_unprotected"])
def test_cose_shapes_that_must_verify(ministry, store, shape):
    kid = ministry.general.kid
    if shape == "untagged":
        cose = sign_raw(ministry.general, {1: -7, 4: kid}, claims(), tag=False)
    elif shape == "cwt_tag":
        cose = cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(sign_raw(ministry.general, {1: -7, 4: kid}, claims()))))
    elif shape == "kid_unprotected":
        cose = sign_raw(ministry.general, {1: -7}, claims(), unprotected={4: kid})
    else:
        cose = sign_raw(ministry.general, {}, claims(), unprotected={1: -7, 4: kid})
    assert verify(hc1.wrap(cose), store, NOW, POLICY).reason == "valid"


def test_protected_header_wins_over_unprotected(ministry, store):
    cose = sign_raw(ministry.general, {1: -7, 4: ministry.general.kid}, claims(),
                    unprotected={4: ministry.rogue.kid})
    assert verify(hc1.wrap(cose), store, NOW, POLICY).reason == "valid"


def test_ps256_round_trip(ministry):
    key = ca.generate_key("PS256")
    cert = ca.make_dsc(ministry.csca, ministry.csca_key, key.public_key(),
                       not_before=NOW - dt.timedelta(days=10), days=100)
    text = hc1.encode(vaccination(), key, ca.kid_of(cert), issued_at=NOW - dt.timedelta(days=1),
                      expires_at=NOW + dt.timedelta(days=30))
    trust = TrustStore.from_certificates([der(cert)])
    assert verify(text, trust, NOW, POLICY).reason == "valid"
    cose = bytearray(cose_of(text))
    cose[-5] ^= 0x40
    assert verify(hc1.wrap(bytes(cose)), trust, NOW, POLICY).reason == "signature"


def test_schema_violation_is_red(ministry, store):
    document = vaccination()
    document["v"][0]["dn"] = 0
    assert verify(issue(ministry.general, document), store, NOW, POLICY).reason == "schema"
    document = vaccination()
    del document["dob"]
    assert verify(issue(ministry.general, document), store, NOW, POLICY).reason == "schema"


def test_unknown_disease_code_is_red(ministry, store):
    document = vaccination()
    document["v"][0]["tg"] = "12345"
    verdict = verify(issue(ministry.general, document), store, NOW, POLICY)
    assert verdict.reason == "value_set"
    relaxed = verify(issue(ministry.general, document), store, NOW, POLICY, VerifyOptions(check_value_sets=False))
    assert relaxed.reason == "valid"


@pytest.mark.parametrize("kind", ["UCI", "COUNTRYCODEUCI", "SIGNATURE"])
def test_revoked_certificate_is_red(ministry, kind):
    uci = f"URN:UVCI:01:VN:REVOKE{kind}#Q"
    text = issue(ministry.general, vaccination(uci))
    unpacked = hc1.unpack(text)
    entry = {"UCI": uci_hash(uci), "COUNTRYCODEUCI": countrycode_uci_hash("VN", uci),
             "SIGNATURE": signature_hash(unpacked.signature, -7)}[kind]
    signers = [SignerKey.from_certificate(der(ministry.general.certificate))]
    revoked = TrustStore(signers, revocations={kind: [entry.upper()]})
    verdict = verify(text, revoked, NOW, POLICY)
    assert verdict.reason == "revoked" and verdict.holder is not None
    assert verify(issue(ministry.general), revoked, NOW, POLICY).reason == "valid"


def test_signature_hash_covers_only_r_for_ecdsa():
    r, s = b"\x01" * 32, b"\x02" * 32
    assert signature_hash(r + s, -7) == signature_hash(r + b"\x03" * 32, -7)
    assert signature_hash(r + s, -7) != signature_hash(b"\x04" * 32 + s, -7)
    assert signature_hash(r + s, -37) != signature_hash(r + b"\x03" * 32, -37)
    assert len(uci_hash("x")) == 32 and countrycode_uci_hash("vn", "x") == countrycode_uci_hash("VN", "x")


def test_policy_fault_is_red_not_a_crash(ministry, store):
    class Broken:
        name = "broken"
        on_untrusted_clock = "warn"
        max_trust_age = None

        def decide(self, dcc_, now):
            raise KeyError("boom")

    class Nonsense:
        name = "nonsense"
        on_untrusted_clock = "warn"
        max_trust_age = None

        def decide(self, dcc_, now):
            return "purple", 1, "", ""

    text = issue(ministry.general)
    assert verify(text, store, NOW, Broken()).reason == "policy_error"
    assert verify(text, store, NOW, Nonsense()).reason == "policy_error"


def test_untrusted_clock_and_stale_trust_cap_at_yellow(ministry, store):
    text = issue(ministry.general)
    verdict = verify(text, store, NOW, POLICY, VerifyOptions(clock_trusted=False))
    assert (verdict.result, verdict.reason) == ("yellow", "clock_untrusted")
    stale = VerifyOptions(trust_age=dt.timedelta(days=9), max_trust_age=dt.timedelta(days=7))
    assert verify(text, store, NOW, POLICY, stale).reason == "trust_stale"
    fresh = VerifyOptions(trust_age=dt.timedelta(days=2), max_trust_age=dt.timedelta(days=7))
    assert verify(text, store, NOW, POLICY, fresh).reason == "valid"
    forged = issue(ministry.rogue, kid=ministry.general.kid)
    assert verify(forged, store, NOW, POLICY, VerifyOptions(clock_trusted=False)).reason == "signature"


def test_naive_now_is_taken_as_utc(ministry, store):
    assert verify(issue(ministry.general), store, NOW.replace(tzinfo=None), POLICY).reason == "valid"


@pytest.mark.parametrize("payload, reason", [
    ("", "prefix"), ("hello", "prefix"), ("HC1:", "zlib"), ("HC1:A", "base45"), ("HC1:ÄÖÜ", "base45"),
    ("HC1:" + "A" * 9000, "too_large"), ("HC1:" + b45encode(b"not zlib"), "zlib"),
    ("HC1:" + b45encode(zlib.compress(b"\xff\xff")), "cose"),
    ("HC1:" + b45encode(zlib.compress(cbor2.dumps([1, 2, 3, 4]))), "cose"),
    ("HC1:" + b45encode(zlib.compress(cbor2.dumps(cbor2.CBORTag(99, [b"", {}, b"", b""])))), "cose"),
])
def test_malformed_inputs_are_red_with_their_step(store, payload, reason):
    verdict = verify(payload, store, NOW, POLICY)
    assert (verdict.result, verdict.reason) == ("red", reason)


def test_non_text_payload_is_red(store):
    assert verify(b"HC1:xyz", store, NOW, POLICY).reason == "prefix"  # type: ignore[arg-type]  # wrong type on purpose
    assert verify(None, store, NOW, POLICY).reason == "prefix"  # type: ignore[arg-type]  # wrong type on purpose


def _bounded(func):
    """Run `func`; its result and the peak of memory allocated meanwhile (bytes): the work bound.

    Speed is bench/verify.py's; a hang is caught by pytest-timeout."""
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_zlib_bomb_is_refused_quickly_in_bounded_memory(store):
    bomb = "HC1:" + b45encode(zlib.compress(b"\x00" * (4 * 1024 * 1024), 9))
    verdict, peak = _bounded(lambda: verify(bomb, store, NOW, POLICY))
    assert verdict.reason == "zlib_bomb"
    assert peak < 1024 * 1024  # 4 MiB of zeros never inflated


def test_inflate_cap_holds_for_a_bigger_bomb():
    compressed = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    with pytest.raises(ZlibBomb):
        _bounded(lambda: inflate(compressed))
    _, peak = _bounded(lambda: pytest.raises(ZlibBomb, inflate, compressed))
    assert peak < 256 * 1024 + len(compressed)  # 64 MiB of zeros: inflating stopped at the cap
    assert inflate(zlib.compress(b"x" * 1000)) == b"x" * 1000


def _signed_claims(ministry, change) -> bytes:
    document = vaccination()
    extra = change(document)
    payload = {1: "VN", 6: int((NOW - dt.timedelta(days=1)).timestamp()),
               4: int((NOW + dt.timedelta(days=30)).timestamp()), -260: {1: document}}
    payload.update(extra or {})
    return sign_raw(ministry.general, {1: -7, 4: ministry.general.kid}, cbor2.dumps(payload))


BOMBS = {
    "huge_dcc_array": lambda d: d.update(v=[d["v"][0]] * 300),
    "huge_dcc_string": lambda d: d.update(dob="1" * 30000),
    "huge_unknown_field": lambda d: d.update(x="A" * 30000),
    "huge_nested_unknown": lambda d: d["nam"].update(extra=[[0] * 20000]),
    "huge_dcc_map": lambda d: d["v"][0].update({f"k{i}": 0 for i in range(1000)}),
    "huge_claim_array": lambda d: {99: [0] * 20000},
    "huge_claim_string": lambda d: {99: b"\x00" * 30000},
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_oversized_cbor_inside_a_signed_certificate_is_refused(ministry, store, name):
    cose = _signed_claims(ministry, BOMBS[name])
    verdict, peak = _bounded(lambda: verify(hc1.wrap(cose), store, NOW, POLICY))
    assert (verdict.result, verdict.reason) == ("red", "cbor_limits")
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize("name", ["deep_cose", "deep_claims", "declared_huge_string", "declared_huge_array",
                                  "shared_reference", "bigfloat"])
def test_cbor_bombs_are_refused_quickly(ministry, store, name):
    kid = ministry.general.kid
    deep = b"\x81" * 5000 + b"\x01"
    if name == "deep_cose":
        cose = cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""]))[:2] + deep
    elif name == "deep_claims":
        cose = sign_raw(ministry.general, {1: -7, 4: kid}, deep)
    elif name == "declared_huge_string":
        cose = sign_raw(ministry.general, {1: -7, 4: kid}, b"\x5b\x00\x00\x00\xff\xff\xff\xff\xff" + b"a" * 10)
    elif name == "declared_huge_array":
        cose = sign_raw(ministry.general, {1: -7, 4: kid}, b"\x9b\x00\x00\x00\xff\xff\xff\xff\xff" + b"\x01" * 10)
    elif name == "shared_reference":
        cose = sign_raw(ministry.general, {1: -7, 4: kid}, b"\xd8\x1c\x81\xd8\x1d\x00")
    else:
        cose = sign_raw(ministry.general, {1: -7, 4: kid}, b"\xc5\x82\x1b\x00\x00\x00\x0f\xff\xff\xff\xff\x01")
    verdict, peak = _bounded(lambda: verify(hc1.wrap(cose), store, NOW, POLICY))
    assert verdict.result == "red"
    assert verdict.reason == ("cbor_limits" if name.startswith("deep") else "cwt")
    assert peak < 4 * 1024 * 1024  # a declared 2**40 bytes or items is never allocated


def test_lenient_eku_reader_handles_empty_sequence_and_critical_flag():
    oid = bytes.fromhex("060b2b060104018e378f650102")  # 1.3.6.1.4.1.1847.2021.1.2 (vaccination)
    body = b"\x30" + bytes([len(oid)]) + oid
    ext = bytes.fromhex("0603551d25") + b"\x01\x01\xff" + b"\x04" + bytes([len(body)]) + body
    assert lenient_eku_oids(b"\x30\x00" + ext) == ["1.3.6.1.4.1.1847.2021.1.2"]
    empty = bytes.fromhex("0603551d25") + b"\x04\x02\x30\x00"
    assert lenient_eku_oids(empty) == []
    assert lenient_eku_oids(b"no extension here") is None
    assert lenient_eku_oids(bytes.fromhex("0603551d25") + b"\x04\x7f") is None


def test_error_codes_and_messages_are_complete():
    def walk(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    classes = list(walk(VerificationError))
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), "error codes must be unique"
    for cls in classes:
        assert cls.code.replace("_", "").isalnum() and cls.code.islower()
        assert cls.message_en and cls.message_vi and cls.__doc__


def test_verdict_repr_withholds_personal_data(ministry, store):
    verdict = verify(issue(ministry.general), store, NOW, POLICY, VerifyOptions(uci_key=b"k"))
    assert verdict.uci_hash is not None
    text = repr(verdict) + str(verdict)
    assert "Nguy" not in text and "1990" not in text and "UVCI" not in text and verdict.uci_hash not in text


def test_signer_whose_extensions_cryptography_refuses_is_read_leniently():
    """dgc-testdata common/CO15: an empty EKU SEQUENCE makes `cryptography` raise."""
    import base64
    import json
    from pathlib import Path

    from cryptography import x509

    case = json.loads((Path(__file__).parent / "data/dcc/common/2DCode/raw/CO15.json").read_text())
    certificate = base64.b64decode(case["TESTCTX"]["CERTIFICATE"])
    with pytest.raises(ValueError):
        _ = x509.load_der_x509_certificate(certificate).extensions
    signer = SignerKey.from_certificate(certificate)
    assert signer.types == frozenset({"v", "t", "r"})


def test_bytes_riding_along_outside_the_signature_are_refused(ministry, store):
    cose = cose_of(issue(ministry.general))
    assert verify(hc1.wrap(cose + b"\x00"), store, NOW, POLICY).reason == "cose"
    compressed = zlib.compress(cose) + b"extra"
    assert verify("HC1:" + b45encode(compressed), store, NOW, POLICY).reason == "zlib"
    assert verify("  " + issue(ministry.general) + "\r\n", store, NOW, POLICY).reason == "valid"


def test_fast_constructors_match_the_dataclass_ones():
    from verifier.verdict import Holder, Verdict

    values: dict[str, Any] = dict(result="green", reason="valid", message_en="ok", message_vi="được", policy="p", kid="a2lk")
    assert Verdict.from_fields(values) == Verdict(**values)
    assert Verdict.from_fields(values).detail == {} and Verdict.from_fields(values).detail is not \
        Verdict.from_fields(values).detail
    assert Holder.of("A", "B", "C", "D", "2000") == Holder("A", "B", "C", "D", "2000")
    with pytest.raises(TypeError):
        Verdict.from_fields({"result": "green"})
    with pytest.raises(TypeError):
        Verdict.from_fields(dict(values, colour="blue"))
    with pytest.raises(AttributeError):
        Verdict.from_fields(values).result = "red"  # type: ignore[misc]  # the assignment must fail: still frozen


@pytest.mark.parametrize("data, text", [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"),
                                        (b"ietf!", "QED8WEX0"), (b"", ""), (b"\xff\xff", "FGW"), (b"\x00", "00")])
def test_base45_rfc9285_vectors(data, text):
    from verifier.base45 import b45decode

    assert b45encode(data) == text and b45decode(text) == data


@pytest.mark.parametrize("text", ["GGW", "A", "abc", ":::", "%69 VD92EX0GGW", "ZZ", "FGX"])
def test_base45_refuses_bad_text(text):
    from verifier.base45 import b45decode
    from verifier.errors import Base45Error

    with pytest.raises(Base45Error):
        b45decode(text)


@pytest.mark.parametrize("size", [0, 1, 23, 24, 255, 256, 65535, 65536])
def test_sig_structure_matches_cbor2(size):
    from verifier.cose import Sign1

    protected, payload = bytes(range(size % 40)), b"p" * size
    msg = Sign1(protected, {}, {}, payload, b"", -7, None)
    assert msg.to_be_signed() == cbor2.dumps(["Signature1", protected, b"", payload])
