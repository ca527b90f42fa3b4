"""Revocation hashes against the EU DCC revocation definition, computed here without chot's code.

The definition (EU DCC Gateway revocation interface, eu-digital-green-certificates/dgc-gateway:
`RevocationHashTypeDto` for what each type hashes, `RevocationBatchDto.BatchEntryDto.hash` for
the entry: "first 128 Bits of the hash", exactly 16 bytes; the hash is SHA-256 as in the
reference verifier dgca-verifier-app-android, `revocation/domain/Util.kt`):
- UCI: SHA-256 over the UCI string encoded in UTF-8;
- COUNTRYCODEUCI: SHA-256 over the country code then the UCI, both UTF-8;
- SIGNATURE: SHA-256 over the COSE_Sign1 signature bytes; for ECDSA only r, the first half of
  the raw r||s value (s can be negated without breaking the signature), for RSA the whole value;
each cut to its first 16 bytes. chot writes them as lower-case hex.

Which country code: the reference verifier takes the entry's `co`, the Corona-Warn-App the CWT
issuer (claim 1); they are the same in every published example. chot, like the reference
verifier and keys/revoke.py, takes `co`.

Published values: the Corona-Warn-App's sample data (tests/data/revocation/SOURCE.md), real
DE (ES256) and LT (PS256) certificates with all three expected hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from keys import ca, dcc, hc1
from keys.people import Person
from keys.revoke import hashes_for_hc1, hashes_for_uci
from verifier import TrustStore, verify
from verifier.revocation import countrycode_uci_hash, signature_hash, uci_hash
from verifier.trust import SignerKey

SAMPLES = json.loads((Path(__file__).parent / "data" / "revocation" / "RevocationCalculationSampleData.json")
                     .read_text(encoding="utf-8"))
ECDSA = {-7, -35, -36}  # ES256, ES384, ES512
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=dt.timezone.utc)
B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


# --- the definition, written out independently of verifier/revocation.py ---------------------

def spec_uci(uci: str) -> str:
    return hashlib.sha256(uci.encode("utf-8")).digest()[:16].hex()


def spec_countrycode_uci(country: str, uci: str) -> str:
    return hashlib.sha256(country.encode("utf-8") + uci.encode("utf-8")).digest()[:16].hex()


def spec_signature(signature: bytes, alg: int) -> str:
    signed = signature[: len(signature) // 2] if alg in ECDSA else signature
    return hashlib.sha256(signed).digest()[:16].hex()


def b45decode(text: str) -> bytes:
    """RFC 9285 Base45, written here so the published samples are read without chot's decoder."""
    out = bytearray()
    for i in range(0, len(text), 3):
        chunk = [B45.index(c) for c in text[i:i + 3]]
        value = sum(d * 45 ** k for k, d in enumerate(chunk))
        out += value.to_bytes(2 if len(chunk) == 3 else 1, "big")
    return bytes(out)


def parts(barcode: str) -> tuple[str, str, str, bytes, int]:
    """(UCI, entry country `co`, CWT issuer, signature, alg) of an HC1 string."""
    message = cbor2.loads(zlib.decompress(b45decode(barcode[4:])))
    message = message.value if isinstance(message, cbor2.CBORTag) else message
    protected, unprotected, payload, signature = message
    alg = cbor2.loads(protected).get(1, unprotected.get(1))
    claims = cbor2.loads(payload)
    entry = next(claims[-260][1][kind][0] for kind in ("v", "t", "r") if claims[-260][1].get(kind))
    return entry["ci"], entry["co"], claims[1], signature, alg


# --- published example values -------------------------------------------------------------------

@pytest.mark.parametrize("sample", SAMPLES, ids=[s["description"] for s in SAMPLES])
def test_published_examples_match_the_definition_and_chot(sample: dict[str, str]) -> None:
    uci, country, issuer, signature, alg = parts(sample["barcodeData"])
    expected = {"UCI": sample["expUCI"], "COUNTRYCODEUCI": sample["expCOUNTRYCODEUCI"],
                "SIGNATURE": sample["expSIGNATURE"]}
    # The definition above reproduces the published values (so it is the right oracle) ...
    assert {"UCI": spec_uci(uci), "COUNTRYCODEUCI": spec_countrycode_uci(country, uci),
            "SIGNATURE": spec_signature(signature, alg)} == expected
    assert country == issuer  # both readings of "country code" agree on every published example
    # ... and so do the verifier's functions and the ministry tool, from the HC1 string alone.
    assert {"UCI": uci_hash(uci), "COUNTRYCODEUCI": countrycode_uci_hash(country, uci),
            "SIGNATURE": signature_hash(signature, alg)} == expected
    assert hashes_for_hc1(sample["barcodeData"]) == {kind: [value] for kind, value in expected.items()}


def test_published_examples_cover_both_signature_cuts() -> None:
    algs = {parts(s["barcodeData"])[4] for s in SAMPLES}
    assert algs == {-7, -37}  # ES256 (r only) and PS256 (the whole signature)
    for sample in SAMPLES:
        _, _, _, signature, alg = parts(sample["barcodeData"])
        whole = hashlib.sha256(signature).digest()[:16].hex()
        assert (whole == sample["expSIGNATURE"]) is (alg == -37)  # ECDSA: hashing r||s would miss


# --- chot's units revoke what a list built from the definition names ------------------------------

PERSON = Person(family_name="Trần", given_name="Văn Bình", dob="1985-03-02",
                family_name_t="TRAN", given_name_t="VAN<BINH")


def _signer(alg: str) -> tuple[Any, bytes, bytes]:
    root_key = ca.generate_key()
    root = ca.make_csca(root_key, not_before=NOW - dt.timedelta(days=400))
    key = ca.generate_key(alg)
    cert = ca.make_dsc(root, root_key, key.public_key(), not_before=NOW - dt.timedelta(days=100))
    der = cert.public_bytes(Encoding.DER)
    return key, SignerKey.from_certificate(der).kid, der


@pytest.fixture(scope="module", params=["ES256", "PS256"])
def signer(request: pytest.FixtureRequest) -> tuple[Any, bytes, bytes]:
    return _signer(request.param)


def _issue(signer: tuple[Any, bytes, bytes], uci: str, country: str = "VN") -> str:
    key, kid, _ = signer
    document = dcc.vaccination(PERSON, 2, 2, "2021-08-01", "pfizer", uci=uci)
    document["v"][0]["co"] = country
    return hc1.encode(document, key, kid, issued_at=NOW - dt.timedelta(days=1), expires_at=NOW + dt.timedelta(days=300))


@pytest.mark.parametrize("kind", ["UCI", "COUNTRYCODEUCI", "SIGNATURE"])
def test_a_list_computed_from_the_definition_revokes(signer: tuple[Any, bytes, bytes], kind: str) -> None:
    uci = f"URN:UVCI:01:VN:SPEC{kind}#Z"
    text = _issue(signer, uci)
    _, country, _, signature, alg = parts(text)
    entry = {"UCI": spec_uci(uci), "COUNTRYCODEUCI": spec_countrycode_uci(country, uci),
             "SIGNATURE": spec_signature(signature, alg)}[kind]
    store = TrustStore([SignerKey.from_certificate(signer[2])], revocations={kind: [entry]})
    assert verify(text, store, NOW, _Green()).reason == "revoked"
    assert verify(_issue(signer, uci + "X"), store, NOW, _Green()).reason == "valid"  # another certificate


def test_countrycode_uci_takes_the_entrys_country_as_the_reference_verifier_does() -> None:
    """Vaccinated in DE, certificate issued (CWT iss) by VN: the `co` reading is chot's, and the
    ministry tool and the unit agree on it."""
    signer = _signer("ES256")
    uci = "URN:UVCI:01:VN:ABROAD0001#M"
    text = _issue(signer, uci, country="DE")
    _, country, issuer, _, _ = parts(text)
    assert (country, issuer) == ("DE", "VN")
    entry = spec_countrycode_uci("DE", uci)
    assert hashes_for_hc1(text)["COUNTRYCODEUCI"] == [entry]
    store = TrustStore([SignerKey.from_certificate(signer[2])], revocations={"COUNTRYCODEUCI": [entry]})
    assert verify(text, store, NOW, _Green()).reason == "revoked"


def test_an_ecdsa_entry_over_the_whole_signature_does_not_revoke() -> None:
    """The cut matters: a list that hashed r||s (not the definition) would never match chot."""
    signer = _signer("ES256")
    text = _issue(signer, "URN:UVCI:01:VN:WHOLESIG#Q")
    signature = parts(text)[3]
    wrong = hashlib.sha256(signature).digest()[:16].hex()
    store = TrustStore([SignerKey.from_certificate(signer[2])], revocations={"SIGNATURE": [wrong]})
    assert verify(text, store, NOW, _Green()).reason == "valid"


def test_the_ministry_tool_writes_the_definitions_hashes() -> None:
    uci = "URN:UVCI:01:VN:BYUCI0001#K"
    assert hashes_for_uci(uci, "VN") == {"UCI": [spec_uci(uci)], "COUNTRYCODEUCI": [spec_countrycode_uci("VN", uci)]}
    # A lower-case country code is written upper-case, as every issuer writes `co` (ISO 3166-1 alpha-2).
    assert hashes_for_uci(uci, "vn")["COUNTRYCODEUCI"] == [spec_countrycode_uci("VN", uci)]


@given(uci=st.text(min_size=1, max_size=80), country=st.sampled_from(["VN", "DE", "LT", "XK", "UN"]))
def test_identifier_hashes_equal_the_definition_for_any_text(uci: str, country: str) -> None:
    uci = uci.encode("utf-8", "replace").decode("utf-8")  # the CBOR text of a real certificate is valid UTF-8
    assert uci_hash(uci) == spec_uci(uci)
    assert countrycode_uci_hash(country, uci) == spec_countrycode_uci(country, uci)


@given(half=st.sampled_from([32, 48, 66]), data=st.data(), alg=st.sampled_from([-7, -35, -36, -37, -38, -39]))
def test_signature_hash_equals_the_definition_for_any_signature(half: int, data: st.DataObject, alg: int) -> None:
    signature = data.draw(st.binary(min_size=2 * half, max_size=2 * half))
    assert signature_hash(signature, alg) == spec_signature(signature, alg)


class _Green:
    """A policy that lets every certificate reaching it through: these tests are about revocation."""

    name = "green"

    on_untrusted_clock = "warn"

    max_trust_age = None

    def decide(self, dcc_: object, now: dt.datetime) -> tuple[str, str, str, str]:
        return "green", "valid", "Valid certificate.", "Chứng nhận hợp lệ."
