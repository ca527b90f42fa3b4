"""Property tests: random and mutated payloads never raise, and every result is red with a reason."""

from __future__ import annotations

import datetime as dt
import functools
import operator
import zlib

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from keys import dcc, hc1
from keys.people import Person
from verifier import TrustStore, verify
from verifier.base45 import ALPHABET, b45decode, b45encode
from verifier.errors import Base45Error, CborLimitsError, SchemaError, VerificationError
from verifier.schema import compile_fast_schema, compile_schema

UTC = dt.timezone.utc
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
CODES = {cls.code for cls in VerificationError.__subclasses__()} | {
    sub.code for cls in VerificationError.__subclasses__() for sub in cls.__subclasses__()}
SETTINGS = settings(max_examples=int(__import__("os").environ.get("CHOT_HYPOTHESIS_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class AcceptAll:
    name = "accept-all"
    on_untrusted_clock = "warn"
    max_trust_age = None

    def decide(self, dcc_: object, now: dt.datetime) -> tuple[str, str, str, str]:
        return "green", "valid", "Valid.", "Hợp lệ."


@pytest.fixture(scope="module")
def signed(ministry) -> tuple[str, TrustStore]:
    person = Person(family_name="Trần", given_name="Văn Bình", dob="1985-01-02",
                    family_name_t="TRAN", given_name_t="VAN<BINH")
    document = dcc.vaccination(person, 2, 2, "2021-08-01", "astrazeneca", uci="URN:UVCI:01:VN:PROPS#A")
    text = hc1.encode(document, ministry.general.key, ministry.general.kid,
                      issued_at=NOW - dt.timedelta(days=1), expires_at=NOW + dt.timedelta(days=100))
    store = TrustStore.from_certificates([ministry.general.certificate.public_bytes(Encoding.DER)])
    assert verify(text, store, NOW, AcceptAll()).result == "green"
    return text, store


def assert_red(verdict) -> None:
    assert verdict.result == "red"
    assert verdict.reason in CODES or verdict.reason in {"internal"}, verdict.reason
    assert verdict.reason != "internal", verdict.error_detail
    assert verdict.message_en and verdict.message_vi


@SETTINGS
@given(st.text(max_size=400))
def test_random_text_is_red(signed, text):
    assert_red(verify(text, signed[1], NOW, AcceptAll()))


@SETTINGS
@given(st.text(alphabet=ALPHABET, max_size=600))
def test_random_base45_after_prefix_is_red(signed, body):
    assert_red(verify("HC1:" + body, signed[1], NOW, AcceptAll()))


@SETTINGS
@given(st.binary(max_size=600))
def test_random_compressed_bytes_are_red(signed, data):
    assert_red(verify("HC1:" + b45encode(zlib.compress(data)), signed[1], NOW, AcceptAll()))


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.integers(-300, 10) | st.text(max_size=5), inner, max_size=5),
    max_leaves=30)


@SETTINGS
@given(cbor_values, st.sampled_from([None, 18, 61]))
def test_random_cbor_structures_are_red(signed, value, tag):
    if tag is not None:
        value = cbor2.CBORTag(tag, value)
    assert_red(verify(hc1.wrap(cbor2.dumps(value)), signed[1], NOW, AcceptAll()))


@SETTINGS
@given(st.data())
def test_mutated_cose_is_red(signed, data):
    cose = bytearray(hc1.unwrap(signed[0]))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(cose) - 1))
        cose[at] = data.draw(st.integers(0, 255).filter(functools.partial(operator.ne, cose[at])))
    assume(bytes(cose) != hc1.unwrap(signed[0]))  # two edits of one byte can restore it
    assert_red(verify(hc1.wrap(bytes(cose)), signed[1], NOW, AcceptAll()))


@SETTINGS
@given(st.data())
def test_mutated_text_is_red(signed, data):
    text = signed[0]
    at = data.draw(st.integers(0, len(text) - 1))
    new = data.draw(st.sampled_from(ALPHABET + "abc:~é").filter(lambda c: c != text[at]))
    mutated = text[:at] + new + text[at + 1:]
    verdict = verify(mutated, signed[1], NOW, AcceptAll())
    assert_red(verdict)


@SETTINGS
@given(st.data())
def test_truncated_or_extended_payload_is_red(signed, data):
    text = signed[0]
    cut = data.draw(st.integers(4, len(text) - 1))
    # Whitespace around the payload is what scanners add, and is stripped; anything else is not.
    tail = data.draw(st.text(alphabet=ALPHABET, min_size=1, max_size=10).filter(str.strip))
    assert_red(verify(text[:cut], signed[1], NOW, AcceptAll()))
    assert_red(verify(text + tail, signed[1], NOW, AcceptAll()))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_base45_round_trip(data):
    assert b45decode(b45encode(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_base45_decode_accepts_or_refuses_cleanly(text):
    try:
        decoded = b45decode(text)
    except Base45Error:
        return
    assert b45encode(decoded) == text


DCC_FIELDS = st.sampled_from(["ver", "nam", "dob", "v", "t", "r", "fn", "fnt", "gnt", "tg", "dn", "sd", "dt",
                              "co", "ci", "mp", "tt", "sc", "tr", "fr", "df", "du", "extra"])
DCC_VALUES = st.one_of(st.none(), st.integers(-3, 5), st.text(max_size=12), st.just("1"*9000),
                       st.lists(st.integers(), max_size=3), st.just([{}] * 300), st.just({}),
                       st.sampled_from(["840539006", "2021-08-01", "2021-08-01T10:00:00Z", "VN", "EU/1/20/1528"]))


def _mutate(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        copy[head] = _mutate(value.get(head, {}), rest, new) if rest else new
        return copy
    if isinstance(value, list) and value:
        return [_mutate(value[0], path, new)] + value[1:]
    return new


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["v", "t", "r"]), st.lists(DCC_FIELDS, min_size=1, max_size=3), DCC_VALUES)
def test_fast_schema_never_accepts_what_the_detailed_one_refuses(kind, path, new):
    person = Person(family_name="Lê", given_name="An", dob="2000-01-01", family_name_t="LE", given_name_t="AN")
    base = {"v": lambda: dcc.vaccination(person, 1, 2, "2021-08-01", "pfizer", uci="U1"),
            "t": lambda: dcc.covid_test(person, "2021-09-01T10:00:00Z", uci="U2"),
            "r": lambda: dcc.recovery(person, "2021-07-01", uci="U3")}[kind]()
    mutated = _mutate(base, [kind, *path] if path[0] not in ("ver", "nam", "dob") else path, new)
    fast, detailed = compile_fast_schema(), compile_schema()
    try:
        detailed(mutated)
        ok = True
    except (SchemaError, CborLimitsError):
        ok = False
    if fast(mutated):
        assert ok, f"fast schema accepted what the detailed one refuses: {path} = {new!r:.40}"
