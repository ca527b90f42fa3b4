"""SMART Health Cards in the verifier core: the spec's public samples, our own cards, and every
forgery and bad input the issue lists, each a red verdict with a reason (never an exception)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chot.cli import main
from keys import shc as issue
from verifier import TrustStore, verify
from verifier.formats import detect
from verifier.formats.shc import ShcIssuer, issuers_from_document
from verifier.policy import builtin_policy

DATA = Path(__file__).parent / "data" / "shc"
SPEC_ISS = "https://spec.smarthealth.cards/examples/issuer"
ISS = issue.EXAMPLE_ISS
OTHER_ISS = "https://other.example.org/issuer"
NOW = dt.datetime(2022, 6, 1, 8, 0, tzinfo=dt.timezone.utc)
POLICY = builtin_policy("vn-2021")


def _spec_jwks() -> dict:
    return json.loads((DATA / "spec-example-issuer-jwks.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def trust(key, other_key) -> TrustStore:
    crl = {"kid": issue.public_jwk(key)["kid"], "method": "rid", "ctr": 1,
           "rids": ["revokedRid01", f"oldRid00001.{int(dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc).timestamp())}"]}
    return TrustStore([], shc_issuers=issuers_from_document({
        ISS: {**issue.jwks(key), "crls": [crl]},
        OTHER_ISS: issue.jwks(other_key),
        SPEC_ISS: _spec_jwks(),
    }))


def _card(key, *, iss: str = ISS, doses=(("208", "2021-03-01"), ("208", "2021-04-01")), rid=None,
          nbf=dt.datetime(2021, 5, 1, tzinfo=dt.timezone.utc)) -> str:
    payload = issue.card_payload(iss=iss, nbf=nbf, family="Nguyễn", given=["Văn", "An"],
                                 birth_date="1990-01-02", doses=doses, rid=rid)
    return issue.issue_card(key, payload)


def _signed_body(key, body_json: bytes, header=None) -> str:
    return issue.to_numeric(issue.issue_jws(key, issue.deflate_raw(body_json), header))


def _red(verdict, reason: str) -> None:
    assert (verdict.result, verdict.reason) == ("red", reason), (verdict.result, verdict.reason, verdict.error_detail)
    assert verdict.format == "shc"
    assert verdict.holder is None  # nothing signed was shown for a refused card


# --- public samples -------------------------------------------------------------------------

def test_devtools_sample_covid_card_is_green_with_the_example_issuer_key(trust):
    text = (DATA / "devtools-example-1195-byte-qrnumeric.txt").read_text("ascii").strip()
    verdict = verify(text, trust, NOW, POLICY)
    assert (verdict.result, verdict.reason, verdict.format) == ("green", "complete_series", "shc")
    assert verdict.issuer == SPEC_ISS and verdict.kid == "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s"
    assert verdict.holder.family_name == "Kenobi-Skywalker" and verdict.holder.dob == "1961-02-28"
    assert verdict.detail["cvx"] == "208" and verdict.detail["dt"] == "2021-08-21"
    assert verdict.to_json()["format"] == "shc"
    assert "format" not in verdict.event_fields()  # the unit-central contract is unchanged


def test_samples_are_red_without_the_issuer_key(key):
    text = (DATA / "devtools-example-1195-byte-qrnumeric.txt").read_text("ascii").strip()
    only_ours = TrustStore([], shc_issuers={ISS: ShcIssuer.from_jwks(ISS, issue.jwks(key))})
    _red(verify(text, only_ours, NOW, POLICY), "kid_unknown")


def test_spec_example_00_is_an_insurance_card_not_a_vaccination(trust):
    text = (DATA / "spec-example-00-qr-numeric.txt").read_text("ascii").strip()
    later = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    verdict = verify(text, trust, later, POLICY)
    assert (verdict.result, verdict.reason) == ("red", "fhir")  # signature good, no immunization
    assert verdict.issuer == SPEC_ISS
    _red(verify(text, trust, NOW, POLICY), "shc_not_yet_valid")  # nbf 2023-02-23


def test_spec_crl_loads():
    crl = json.loads((DATA / "spec-example-issuer-crl.json").read_text("utf-8"))
    issuer = ShcIssuer.from_jwks(SPEC_ISS, _spec_jwks(), [crl])
    assert issuer.revoked[crl["kid"]]["FKDIxsTCGlU"] is None
    assert issuer.revoked[crl["kid"]]["vwAjHdarZuc"] == 1664492124


# --- our own cards and the policy -------------------------------------------------------------

@pytest.mark.parametrize("doses, result, reason", [
    ((("208", "2021-03-01"), ("208", "2021-04-01")), "green", "complete_series"),
    ((("207", "2021-03-01"), ("208", "2021-04-01")), "green", "complete_series"),  # mixed series
    ((("212", "2021-03-01"),), "green", "complete_series"),                          # one-dose product
    ((("208", "2021-03-01"),), "yellow", "partial_vaccination"),
    # as for a DCC recording the same latest dose: the second dose under 14 days ago
    ((("208", "2021-03-01"), ("208", "2022-05-25")), "red", "too_soon_after_dose"),
])
def test_own_cards_decided_by_the_checkpoint_policy(key, trust, doses, result, reason):
    verdict = verify(_card(key, doses=doses), trust, NOW, POLICY)
    assert (verdict.result, verdict.reason, verdict.format) == (result, reason, "shc")
    assert verdict.holder.display_name() == "Nguyễn Văn An" and verdict.holder.dob == "1990-01-02"
    assert verdict.detail["dn"] == len(doses)


def test_unknown_vaccine_code_is_red_fhir(key, trust):
    _red(verify(_card(key, doses=(("999", "2021-03-01"),)), trust, NOW, POLICY), "fhir")


def test_revoked_rid_and_rid_revoked_before_a_time(key, trust):
    _red(verify(_card(key, rid="revokedRid01"), trust, NOW, POLICY), "revoked")
    _red(verify(_card(key, rid="oldRid00001"), trust, NOW, POLICY), "revoked")  # nbf before the cut
    reissued = _card(key, rid="oldRid00001", nbf=dt.datetime(2022, 2, 1, tzinfo=dt.timezone.utc))
    assert verify(reissued, trust, NOW, POLICY).result == "green"


def test_nbf_in_the_future_and_exp_past(key, trust):
    _red(verify(_card(key, nbf=NOW + dt.timedelta(days=1)), trust, NOW, POLICY), "shc_not_yet_valid")
    payload = issue.card_payload(iss=ISS, nbf=dt.datetime(2021, 5, 1), family="A", given=["B"],
                                 birth_date="1990", doses=(("212", "2021-03-01"),))
    payload["exp"] = int(dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    _red(verify(issue.issue_card(key, payload), trust, NOW, POLICY), "shc_expired")


# --- forgeries --------------------------------------------------------------------------------

def test_wrong_key(key, other_key, trust):
    forged = _card(other_key)  # header kid is other_key's, iss claims ours
    _red(verify(forged, trust, NOW, POLICY), "issuer_mismatch")
    payload = json.dumps(issue.card_payload(iss=ISS, nbf=dt.datetime(2021, 5, 1), family="A", given=["B"],
                                            birth_date="1990", doses=(("212", "2021-03-01"),))).encode()
    header = {"zip": "DEF", "alg": "ES256", "kid": issue.public_jwk(key)["kid"]}  # our kid, their signature
    _red(verify(_signed_body(other_key, payload, header), trust, NOW, POLICY), "signature")


def test_another_issuers_key_for_our_iss_and_an_unknown_issuer(other_key, trust):
    _red(verify(_card(other_key, iss=ISS), trust, NOW, POLICY), "issuer_mismatch")
    stranger = ec.generate_private_key(ec.SECP256R1())
    _red(verify(_card(stranger, iss="https://nobody.example/"), trust, NOW, POLICY), "kid_unknown")


def test_edited_payload(key, trust):
    jws = issue.issue_jws(key, issue.deflate_raw(json.dumps(issue.card_payload(
        iss=ISS, nbf=dt.datetime(2021, 5, 1), family="A", given=["B"], birth_date="1990",
        doses=(("208", "2021-03-01"),))).encode()))
    header, _, signature = jws.split(".")
    better = issue.deflate_raw(json.dumps(issue.card_payload(
        iss=ISS, nbf=dt.datetime(2021, 5, 1), family="A", given=["B"], birth_date="1990",
        doses=(("208", "2021-03-01"), ("208", "2021-04-01")))).encode())
    forged = issue.to_numeric(f"{header}.{issue.b64url_encode(better)}.{signature}")
    _red(verify(forged, trust, NOW, POLICY), "signature")


def test_alg_none_hs256_with_the_public_key_and_others(key, trust):
    kid = issue.public_jwk(key)["kid"]
    body = issue.b64url_encode(issue.deflate_raw(json.dumps(issue.card_payload(
        iss=ISS, nbf=dt.datetime(2021, 5, 1), family="A", given=["B"], birth_date="1990",
        doses=(("212", "2021-03-01"),))).encode()))
    for alg in ("none", "HS256", "RS256", "ES384", "es256", None):
        header = issue.b64url_encode(json.dumps({"zip": "DEF", "alg": alg, "kid": kid}).encode())
        secret = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        for signature in ("", issue.b64url_encode(mac), issue.b64url_encode(mac + mac)):
            _red(verify(issue.to_numeric(f"{header}.{body}.{signature}"), trust, NOW, POLICY), "alg_unsupported")


def test_header_without_zip_or_kid(key, trust):
    payload = b'{"iss":"x"}'
    _red(verify(_signed_body(key, payload, {"alg": "ES256", "kid": "k"}), trust, NOW, POLICY), "jws")
    _red(verify(_signed_body(key, payload, {"alg": "ES256", "zip": "DEF"}), trust, NOW, POLICY), "kid_missing")


# --- bad input ----------------------------------------------------------------------------------

def test_deflate_bomb_is_capped(key, trust):
    bomb = issue.issue_jws(key, issue.deflate_raw(b" " * 3_000_000))
    assert len(issue.to_numeric(bomb)) < 8192  # fits in a QR: the cap, not the size limit, stops it
    _red(verify(issue.to_numeric(bomb), trust, NOW, POLICY), "zlib_bomb")


def test_deep_json(key, trust):
    deep = b'{"iss":' + b"[" * 5000 + b"]" * 5000 + b"}"
    _red(verify(_signed_body(key, deep), trust, NOW, POLICY), "json_limits")


@pytest.mark.parametrize("text, reason", [
    ("shc:/" + "56" * 5000, "too_large"),
    ("shc:/567", "shc_numeric"),                        # odd number of digits
    ("shc:/5678", "shc_numeric"),                       # pair 78 > 77
    ("shc:/56a6", "shc_numeric"),
    ("shc:/", "shc_numeric"),
    ("shc:/1/2/5676", "shc_chunked"),                   # deprecated multi-QR form
    ("shc:/565656", "jws"),                             # digits fine, not a JWS
    ("shc:/" + "٥٦" * 4, "shc_numeric"),               # non-ASCII digits
])
def test_bad_numeric_input(trust, text, reason):
    _red(verify(text, trust, NOW, POLICY), reason)


def test_mutations_never_raise_or_hang(key, trust):
    good = _card(key)
    rng = random.Random(23)
    for _ in range(300):
        chars = list(good)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(5, len(chars))] = rng.choice("0123456789/.x")
        verdict = verify("".join(chars), trust, NOW, POLICY)
        assert verdict.result in ("green", "yellow", "red") and verdict.reason != "internal"


# --- format detection and trust loading ----------------------------------------------------------

@pytest.mark.parametrize("text, fmt", [
    ('{"data": {"hdr": {"t": "icao.vacc", "v": 1, "is": "JPN"}, "msg": {}}, "sig": {"alg": "ES256"}}', "vds-nc"),
    ('{"sig":{"alg":"ES256","cer":"x","sigvl":"y"},"data":{"hdr":{},"msg":{}}}', "vds-nc"),
    ("B64:UEsDBBQAAAAIAA", "divoc"),
    ("PK\x03\x04\x14\x00\x00\x00", "divoc"),
])
def test_known_unsupported_formats_say_so(trust, text, fmt):
    assert detect(text) == fmt
    verdict = verify(text, trust, NOW, POLICY)
    assert (verdict.result, verdict.reason, verdict.format) == ("red", "format_unsupported", fmt)
    assert "format" in verdict.message_en and "định dạng" in verdict.message_vi


def test_unknown_text_and_hc1_keep_their_reasons(trust):
    verdict = verify("hello", trust, NOW, POLICY)
    assert (verdict.reason, verdict.format) == ("prefix", "unknown")
    assert detect("HC1:6BF") == "dcc" and verify("HC1:6BF", trust, NOW, POLICY).format == "dcc"


def test_jwks_kid_must_be_the_thumbprint(key):
    jwk = {**issue.public_jwk(key), "kid": "not-the-thumbprint"}
    with pytest.raises(ValueError):
        ShcIssuer.from_jwks(ISS, {"keys": [jwk]})
    assert ShcIssuer.from_jwks(ISS, {"keys": [{"kty": "RSA", "kid": "x"}]}).keys == {}


def test_chot_verify_with_shc_issuers(tmp_path, key):
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({ISS: issue.jwks(key)}))
    card = _card(key)
    result = CliRunner().invoke(main, ["verify", card, "--shc-issuers", str(issuers), "--now",
                                       "2022-06-01T08:00:00Z", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["result"], out["format"], out["issuer"]) == ("green", "shc", ISS)
    wrong = CliRunner().invoke(main, ["verify", _card(ec.generate_private_key(ec.SECP256R1())),
                                      "--shc-issuers", str(issuers), "--json"])
    assert wrong.exit_code == 2 and json.loads(wrong.output)["format"] == "shc"
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    assert CliRunner().invoke(main, ["verify", card, "--shc-issuers", str(bad)]).exit_code == 3


def test_signed_trust_bundle_carries_shc_issuers(key):
    from keys.bundle import make_bundle
    from keys.ca import anchor_pem, generate_trust_list_key
    from verifier.bundle import BundleFormatError, parse_bundle

    anchor = generate_trust_list_key()
    issued = dt.datetime(2022, 5, 31, tzinfo=dt.timezone.utc)
    data = make_bundle(anchor, version=3, dscs=[], issued_at=issued, shc_issuers={ISS: issue.jwks(key)})
    store = parse_bundle(data, anchor_pem(anchor)).trust_store()
    verdict = verify(_card(key), store, NOW, POLICY)
    assert (verdict.result, verdict.format, verdict.trust_version) == ("green", "shc", 3)
    bad = make_bundle(anchor, version=4, dscs=[], issued_at=issued,
                      shc_issuers={ISS: {"keys": [{**issue.public_jwk(key), "kid": "forged"}]}})
    with pytest.raises(BundleFormatError):
        parse_bundle(bad, anchor_pem(anchor))
    older = make_bundle(anchor, version=5, dscs=[], issued_at=issued)  # a bundle without them
    assert parse_bundle(older, anchor_pem(anchor)).trust_store().shc_issuers == {}


def test_json_depth_limit_and_quadratic_strings():
    from verifier.errors import JsonLimitsError
    from verifier.formats.shc import MAX_DEPTH, load_json

    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    for depth in (MAX_DEPTH + 1, 900, 20_000):
        with pytest.raises(JsonLimitsError):
            load_json(b"[" * depth + b"]" * depth)
    with pytest.raises(JsonLimitsError):
        load_json(b'"' + b'\\"' * 30_000)  # an unterminated string of escapes: refused, fast


def test_chot_keys_shc_issue_then_chot_verify(tmp_path):
    person = tmp_path / "p.json"
    person.write_text(json.dumps({"fn": "Trần", "gn": "Thị Bình", "dob": "1985-05-06"}), encoding="utf-8")
    issuer = tmp_path / "issuer"
    runner = CliRunner()
    common = ["keys", "shc-issue", "--issuer-dir", str(issuer), "--person", str(person), "--passphrase", "pw",
              "--now", "2021-09-01"]
    made = runner.invoke(main, [*common, "--dose", "208:2021-07-01", "--dose", "208:2021-08-01", "--out", "-"])
    assert made.exit_code == 0, made.output
    card = made.output.strip()
    assert card.startswith("shc:/")
    assert "BEGIN ENCRYPTED PRIVATE KEY" in (issuer / "shc-issuer-key.pem").read_text()
    checked = runner.invoke(main, ["verify", card, "--shc-issuers", str(issuer / "shc-issuers.json"),
                                   "--now", "2021-10-01T00:00:00Z", "--json"])
    out = json.loads(checked.output)
    assert (checked.exit_code, out["result"], out["format"], out["holder"]["dob"]) == (0, "green", "shc", "1985-05-06")
    again = runner.invoke(main, [*common, "--dose", "208:2021-08-01", "--out", "-"])  # same key, second card
    partial = runner.invoke(main, ["verify", again.output.strip(), "--shc-issuers", str(issuer / "shc-issuers.json"),
                                   "--now", "2021-10-01T00:00:00Z", "--json"])
    assert json.loads(partial.output)["reason"] == "partial_vaccination"
    bad = runner.invoke(main, [*common, "--dose", "208/2021", "--out", "-"])
    assert bad.exit_code != 0


def test_chot_verify_reads_a_card_from_a_qr_image(tmp_path, key):
    from keys import qr

    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({ISS: issue.jwks(key)}))
    image = qr.write_png(_card(key), tmp_path / "card.png")
    result = CliRunner().invoke(main, ["verify", str(image), "--shc-issuers", str(issuers), "--now",
                                       "2022-06-01T08:00:00Z", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["format"] == "shc"


def test_the_units_decoder_takes_a_card_at_once(key):
    import cv2
    import numpy as np

    from keys import qr
    from scanner.qr.decode import QrDecoder

    card = _card(key)
    gray = cv2.imdecode(np.frombuffer(qr.png_bytes(card, scale=3), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    decoder = QrDecoder()
    assert decoder.decode(gray) == card
    assert decoder.last_method != "other-code"  # an expected prefix, not a stray code's fallback


def test_the_officer_screen_names_a_foreign_format(key, trust):
    from scanner.screen.view import verdict_view

    lines = verdict_view(verify(_card(key), trust, NOW, POLICY))["lines"]
    assert lines[0]["vi"] == "Định dạng" and lines[0]["value"] == "SMART Health Card"
    assert any(line["en"] == "Doses" and line["value"] == "2/2" for line in lines)
    unsupported = verdict_view(verify("B64:UEsDBBQ", trust, NOW, POLICY))["lines"]
    assert unsupported == [{"vi": "Định dạng", "en": "Format", "value_vi": "DIVOC", "value_en": "DIVOC", "value": "DIVOC"}]
    assert all(line["en"] != "Format" for line in verdict_view(verify("hello", trust, NOW, POLICY))["lines"])
