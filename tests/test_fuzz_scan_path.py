"""Bounded fuzzing of the scan path in the suite (the long coverage-guided runs live in bench/fuzz).

Payload -> verdict and frame -> verdict through the same targets the atheris harnesses drive
(testbed/fuzz/targets.py): `verify` never raises, every verdict is green/yellow/red with a known
reason code and never `internal`, memory does not grow, and a hang is caught by the test's
timeout (speed is bench/verify.py's). Inputs: every DCC test case mutated byte by byte, hostile
inputs (zlib and CBOR bombs, huge dose numbers, deep nesting, invalid UTF-8, dates far in the past
and future), and hypothesis' own text, bytes and CBOR structures, signed by the trusted fuzz
signer so they reach the schema and the policy. Hostile and generated claims must get the colour
the specification demands, computed here without chot's code (`spec_colour`).
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.fuzz import byte_mutations, hostile, targets

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.timeout(600)  # a hang guard only: the whole file takes about a minute


def judged(fn, data: bytes):  # noqa: ANN001, ANN201 - the targets check the verdict's shape themselves
    return fn(data)


# --- the colour the specification demands for signed claims, computed independently ------------
# hcert spec 3.3 (CWT claims: iss 1, iat 6, exp 4 as NumericDate; the DCC at -260/1), RFC 8392
# NumericDate; the DCC JSON schema 1.3.0, which the claims declare (the shipped copy, validated
# with jsonschema); the vn-2021 policy's own text (README "Policies"): green = dn >= sd and at
# least 14 days since dt, yellow = at least one dose at least 14 days ago, red otherwise.

_SCHEMA = json.loads((Path(__file__).parent.parent / "verifier" / "data" / "schemas" / "1.3.0.json")
                     .read_text(encoding="utf-8"))  # the version every claim here declares
# The EU's special-case handling: the date of birth's pattern and format are not checked (BG);
# the vaccination date still must be a date, as the policy judges by it (red `date_unreadable`).
_SCHEMA["properties"]["dob"].pop("pattern", None)
_SCHEMA["properties"]["dob"].pop("format", None)
_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date", raises=ValueError)
def _date_or_date_time(text: object) -> bool:
    # The schema's "date" is an annotation; issuers (SG) write date-times and the reference
    # validators accept them (verifier/fastschema.py says the same), so a date-time passes too.
    if not isinstance(text, str):
        return True
    if len(text) == 10:
        date.fromisoformat(text)
    else:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    return True


_DCC = jsonschema.Draft202012Validator(_SCHEMA, format_checker=_FORMATS)
_CBOR_INT = range(-(2**64), 2**64)  # CBOR's own integers; beyond them a bignum, no JSON number
_SKEW = timedelta(minutes=5)  # the verifier's allowed clock skew (VerifyOptions.clock_skew)


def _plain_json(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return value in _CBOR_INT
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    return False  # floats, bytes, tags: not in any vaccination DCC the schema allows


def spec_colour(claims_cbor: bytes, now: datetime = targets.NOW) -> str:
    """The colour a vaccination certificate with these signed claims must get under vn-2021."""
    try:
        claims = cbor2.loads(claims_cbor)
    except Exception:  # noqa: BLE001 - undecodable CBOR is no CWT
        return "red"
    hcert = claims.get(-260) if isinstance(claims, dict) else None
    dcc = hcert.get(1) if isinstance(hcert, dict) else None
    if not isinstance(dcc, dict):
        return "red"
    iat, exp = claims.get(6), claims.get(4)
    for value in (iat, exp):
        if not (type(value) is int and value in _CBOR_INT):
            return "red"  # a NumericDate is a CBOR integer
    t = now.timestamp()
    if iat > exp:
        return "red"  # issued after it expires: valid at no time, whatever the clock skew
    if iat > t + _SKEW.total_seconds() or exp < t - _SKEW.total_seconds():
        return "red"  # not yet valid, or expired
    assert dcc.get("ver") == "1.3.0", "the oracle knows schema 1.3.0 only"
    if not _plain_json(dcc) or not _DCC.is_valid(dcc):
        return "red"
    (entry,) = dcc["v"]  # the oracle knows vaccinations only; a test or recovery here is a test bug
    dose = entry["dt"] if len(entry["dt"]) > 10 else entry["dt"] + "T00:00:00+00:00"  # dates count from 00:00 UTC
    if datetime.fromisoformat(dose.replace("Z", "+00:00")) > now - timedelta(days=14):
        return "red"
    return "green" if entry["dn"] >= entry["sd"] else "yellow"


def test_every_dcc_test_case_mutated_byte_by_byte() -> None:
    seeds = targets.seed_payloads()
    assert len(seeds) > 400
    colours: dict[str, int] = {}
    checked = 0
    for seed in seeds:
        # Every 11th byte flipped, one at a time: ~24,000 variants over the whole test set.
        for at in range(4, len(seed), 11):
            variant = seed[:at] + bytes([seed[at] ^ 0x01]) + seed[at + 1:]
            verdict = judged(targets.payload_to_verdict, variant)
            colours[verdict.result] = colours.get(verdict.result, 0) + 1
            checked += 1
    assert checked > 20_000
    assert colours.get("red", 0) > checked * 0.9, colours  # a flipped byte almost always breaks it


def test_every_dcc_cose_mutated_inside_the_transport() -> None:
    import random

    rng = random.Random(6)
    checked = 0
    for cose in targets.seed_cose():
        for variant in byte_mutations(cose, rng, 12):
            judged(targets.cose_to_verdict, variant)
            checked += 1
    assert checked > 5_000


def test_hostile_inputs_are_red_with_a_reason() -> None:
    reasons = {}
    for data in hostile.hostile_payloads():
        verdict = judged(targets.payload_to_verdict, data)
        reasons[verdict.reason] = reasons.get(verdict.reason, 0) + 1
    assert {"zlib_bomb", "cbor_limits", "too_large", "base45", "prefix"} <= set(reasons), reasons
    colours = {}
    for data in hostile.hostile_claims():
        verdict = judged(targets.claims_to_verdict, data)
        assert verdict.result == spec_colour(data), (verdict.reason, data[:80])
        colours[verdict.result] = colours.get(verdict.result, 0) + 1
    assert colours.get("red", 0) >= 10 and colours.get("green", 0) >= 3, colours  # both kinds are exercised


def test_a_zlib_bomb_is_refused_without_inflating_it() -> None:
    bomb = hostile.hostile_payloads()[0]
    tracemalloc.start()
    try:
        verdict = judged(targets.payload_to_verdict, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.reason == "zlib_bomb"
    assert peak < 2 * 1024 * 1024, f"inflating took {peak} bytes: the cap did not hold"


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_as_the_qr_text(data: bytes) -> None:
    judged(targets.payload_to_verdict, data)
    judged(targets.payload_to_verdict, b"HC1:" + data)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
def test_arbitrary_text_after_the_prefix(text: str) -> None:
    judged(targets.payload_to_verdict, ("HC1:" + text).encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_as_the_cose_message(data: bytes) -> None:
    judged(targets.cose_to_verdict, data)


CBOR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
    | st.text(max_size=40) | st.binary(max_size=40)
    | st.sampled_from(["1980-01-01", "0001-01-01", "9999-12-31", "2021-02-30", "840539006", "EU/1/20/1528"]),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(
        st.text(max_size=8) | st.integers(min_value=-300, max_value=300), children, max_size=6),
    max_leaves=40)


@FUZZ
@given(CBOR_VALUES, st.integers(min_value=-(2**63), max_value=2**64))
def test_signed_claims_of_any_shape_reach_schema_and_policy_safely(dcc: object, iat: int) -> None:
    claims = cbor2.dumps({1: "VN", 6: iat, 4: iat + 86400, -260: {1: dcc}})
    verdict = judged(targets.claims_to_verdict, claims)
    t, skew = targets.NOW.timestamp(), _SKEW.total_seconds()
    if not isinstance(dcc, dict) or iat > t + skew or iat + 86400 < t - skew:
        assert verdict.result == "red", verdict.reason


_DOSE_DAYS = st.sampled_from([-40_000, -400, -30, -15, -14, -13, -1, 0, 30, 3000])  # days from NOW
_NEAR = st.sampled_from([int(targets.NOW.timestamp()) + s  # either side of NOW and of the 5 min skew
                         for s in (-10**8, -86_400, -301, -299, 299, 301, 86_400, 10**8)])
_ANY_TIME = st.integers(min_value=-(2**65), max_value=2**65)


def _vaccination_claims(iat: int, exp: int, dn: int = 2, sd: int = 2, dose: str = "2021-05-01") -> bytes:
    entry = {"tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528", "ma": "ORG-100030215", "dn": dn,
             "sd": sd, "dt": dose, "co": "VN", "is": "Bộ Y tế", "ci": "URN:UVCI:01:VN:FUZZ0000000002#Y"}
    dcc = {"ver": "1.3.0", "nam": {"fn": "Lê", "fnt": "LE", "gn": "Thị Hoa", "gnt": "THI<HOA"},
           "dob": "1975-04-30", "v": [entry]}
    return cbor2.dumps({1: "VN", 6: iat, 4: exp, -260: {1: dcc}})


@FUZZ
@given(iat=_NEAR, exp=_NEAR, dn=st.integers(-2, 12) | st.integers(-2, 2**40), sd=st.integers(-2, 12),
       days=_DOSE_DAYS, timed=st.booleans())
def test_signed_vaccinations_get_the_colour_the_specification_demands(
        iat: int, exp: int, dn: int, sd: int, days: int, timed: bool) -> None:
    dose = (targets.NOW.date() + timedelta(days=days)).isoformat() + ("T00:00:00Z" if timed else "")
    claims = _vaccination_claims(iat, exp, dn, sd, dose)
    verdict = judged(targets.claims_to_verdict, claims)
    assert verdict.result == spec_colour(claims), (verdict.reason, iat, exp, dn, sd, dose)


def test_every_dose_case_gets_the_colour_the_specification_demands() -> None:
    now = int(targets.NOW.timestamp())
    colours: dict[str, int] = {}
    for dn, sd in ((0, 2), (1, 2), (2, 2), (3, 2), (1, 1), (2**31, 2**31)):
        for days in (-40_000, -400, -15, -14, -13, 0, 3000):
            dose = (targets.NOW.date() + timedelta(days=days)).isoformat()
            claims = _vaccination_claims(now - 86_400, now + 86_400, dn, sd, dose)
            verdict = judged(targets.claims_to_verdict, claims)
            assert verdict.result == spec_colour(claims), (verdict.reason, dn, sd, dose)
            colours[verdict.result] = colours.get(verdict.result, 0) + 1
    assert set(colours) == {"green", "yellow", "red"}, colours


@FUZZ
@given(iat=_ANY_TIME | _NEAR, earlier=st.integers(min_value=1, max_value=2**64))
def test_a_certificate_issued_after_it_expires_is_red(iat: int, earlier: int) -> None:
    claims = _vaccination_claims(iat, iat - earlier)  # exp before iat: valid at no time at all
    assert spec_colour(claims) == "red"
    assert judged(targets.claims_to_verdict, claims).result == "red"


@FUZZ
@given(st.sampled_from(targets.seed_claims()), st.data())
def test_real_claims_mutated_then_signed(seed: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(seed) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    judged(targets.claims_to_verdict, seed[:at] + bytes([value]) + seed[at + 1:])


@FUZZ
@given(st.sampled_from(targets.seed_shc_claims()), st.data())
def test_smart_health_card_payloads_mutated_then_signed(seed: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(seed) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    verdict = judged(targets.shc_claims_to_verdict, seed[:at] + bytes([value]) + seed[at + 1:])
    assert verdict.format == "shc"


def test_smart_health_card_seeds_are_green() -> None:
    for seed in targets.seed_shc_claims():
        assert targets.shc_claims_to_verdict(seed).result == "green"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=5, max_size=20_000))
def test_arbitrary_camera_frames(data: bytes) -> None:
    judged(targets.frame_to_verdict, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(targets.seed_frames()[:30]), st.data())
def test_real_qr_frames_damaged(frame: bytes, data: st.DataObject) -> None:
    damaged = bytearray(frame)
    for _ in range(data.draw(st.integers(min_value=1, max_value=200))):
        damaged[data.draw(st.integers(min_value=4, max_value=len(frame) - 1))] ^= 0xFF
    judged(targets.frame_to_verdict, bytes(damaged))


def test_memory_does_not_grow_over_many_inputs() -> None:
    seeds = targets.seed_payloads()[:200] + hostile.hostile_payloads()
    for data in seeds:  # warm caches (schema, policy, trust) first
        targets.payload_to_verdict(data)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(5):
            for data in seeds:
                targets.payload_to_verdict(data)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 1024 * 1024, f"{grown} bytes kept after {5 * len(seeds)} verifications"


def test_a_png_claiming_more_than_it_holds_is_refused_before_opencv(tmp_path) -> None:
    """Found by bench/fuzz: OpenCV allocated 2 GB for this 170-byte file before giving up."""
    import struct
    import zlib

    from scanner.qr.decode import UnreadableImageError, png_chunks_fit, read_image

    def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
        size = len(body) if length is None else length
        return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 300, 300, 8, 0, 0, 0, 0))
    bomb = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", b"x" * 100, 0x7FFFFF00) + chunk(b"IEND", b"")
    assert not png_chunks_fit(bomb)
    assert targets.image_to_verdict(bomb) is None
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(UnreadableImageError, match="claims more bytes"):
        read_image(path)
    # Real QR images still pass the check and are read.
    pngs = [p for p in targets.seed_images() if p.startswith(b"\x89PNG")]
    assert len(pngs) > 400 and all(png_chunks_fit(png) for png in pngs)
    path.write_bytes(targets.seed_images()[0])
    assert read_image(path) and read_image(path)[0].startswith("HC1:")
