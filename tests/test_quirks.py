"""The EU's special cases (dcc-quality-assurance SpecialCaseHandling.md), each in and out of its allowance.

Every certificate here is issued by the test ministry's own keys, then changed the way the
quirk does it in the field (a trailing space, a null, a float, a date in another format).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from keys import dcc, hc1
from keys.people import Person
from verifier import quirks
from verifier.policy import builtin_policy
from verifier.verify import verify

UTC = dt.UTC
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
PERSON = Person(family_name="Võ", given_name="Minh Khang", dob="1988-11-02", family_name_t="VO",
                given_name_t="MINH<KHANG")
VN_2021 = builtin_policy("vn-2021")


def _vaccination(ver: str = "1.3.0") -> dict[str, Any]:
    document = dcc.vaccination(PERSON, 2, 2, "2021-08-01", "astrazeneca", uci="URN:UVCI:01:VN:SV#1")
    document["ver"] = ver
    return document


def _test(ver: str = "1.3.0") -> dict[str, Any]:
    document = dcc.covid_test(PERSON, "2021-09-30T10:00:00Z", uci="URN:UVCI:01:VN:SV#T")
    document["ver"] = ver
    return document


def _issue(ministry, document: dict[str, Any]) -> str:
    """Signed as it stands, by the test ministry's general DSC (no check of the document on the way)."""
    signer = ministry.general
    return hc1.encode(document, signer.key, signer.kid, issuer="VN", issued_at=NOW - dt.timedelta(hours=1),
                      expires_at=NOW + dt.timedelta(days=365))


def _full(ministry, document: dict[str, Any]) -> Any:
    return verify(_issue(ministry, document), ministry.trust_store(), NOW, VN_2021)


def _verdict(ministry, document: dict[str, Any]) -> tuple[str, str]:
    verdict = _full(ministry, document)
    return verdict.result, verdict.reason


TEST_RESULT = ("yellow", "negative_test")


def test_the_unchanged_certificates_are_green(ministry) -> None:
    assert _verdict(ministry, _vaccination()) == ("green", "complete_series")
    assert _verdict(ministry, _test()) == TEST_RESULT


# -- whitespace around values is trimmed (GR/EL `mp`) ------------------------------------------

def test_whitespace_around_a_value_is_trimmed(ministry) -> None:
    document = _vaccination()
    product = document["v"][0]["mp"]
    document["v"][0]["mp"] = product + " "
    document["v"][0]["co"] = " VN"
    assert _verdict(ministry, document) == ("green", "complete_series")


def test_whitespace_inside_a_value_is_not(ministry) -> None:
    document = _vaccination()
    product = document["v"][0]["mp"]
    document["v"][0]["mp"] = product[:3] + " " + product[3:]
    assert _verdict(ministry, document) == ("red", "value_set")


# -- null for optional fields and an absent v/t/r (BG, LV) -------------------------------------

def test_null_optional_fields_and_null_groups_are_accepted(ministry) -> None:
    document = _vaccination()
    document["nam"]["fn"] = None
    document["t"] = None
    document["r"] = None
    assert _verdict(ministry, document) == ("green", "complete_series")
    test = _test()
    test["t"][0].update(nm=None, ma=None, dr=None)  # a PCR test names no device
    test["v"] = None
    assert _verdict(ministry, test) == TEST_RESULT


def test_null_for_a_required_field_is_a_missing_field(ministry) -> None:
    document = _vaccination()
    document["v"][0]["dt"] = None
    assert _verdict(ministry, document) == ("red", "schema")
    only_nulls = _vaccination()
    only_nulls["v"] = None
    assert _verdict(ministry, only_nulls) == ("red", "schema")


# -- whole-number floats for dn/sd (IE) --------------------------------------------------------

def test_whole_number_floats_for_doses_are_accepted(ministry) -> None:
    document = _vaccination()
    document["v"][0].update(dn=2.0, sd=2.0)
    assert _verdict(ministry, document) == ("green", "complete_series")


def test_fractional_doses_are_not(ministry) -> None:
    document = _vaccination()
    document["v"][0]["dn"] = 1.5
    assert _verdict(ministry, document) == ("red", "schema")


# -- date and date-time formats not enforced (BG dob, PL dates, NL empty `dr`) ------------------

@pytest.mark.parametrize("dob", ["1988-1-5", "05.01.1988", "1988-02-30"])
def test_a_date_of_birth_in_another_pattern_is_accepted(ministry, dob: str) -> None:
    document = _vaccination("1.0.0")
    document["dob"] = dob
    assert _verdict(ministry, document) == ("green", "complete_series")


def test_dates_the_policy_can_read_in_another_format_are_accepted(ministry) -> None:
    document = _vaccination()
    document["v"][0]["dt"] = "2021-08-01T00:00:00"  # a date-time where the schema says date (PL)
    assert _verdict(ministry, document) == ("green", "complete_series")
    test = _test()
    test["t"][0]["dr"] = ""  # NL: an empty optional result date
    test["t"][0]["sc"] = "2021-09-30T10:00:00+0200"
    assert _verdict(ministry, test) == TEST_RESULT


@pytest.mark.parametrize("when", ["01.08.2021", "2021-13-01", ""])
def test_a_date_the_policy_needs_but_cannot_read_is_red_saying_so(ministry, when: str) -> None:
    document = _vaccination()
    document["v"][0]["dt"] = when
    verdict = _full(ministry, document)
    assert (verdict.result, verdict.reason) == ("red", "date_unreadable")
    assert "v.dt" in verdict.message_en and "v.dt" in verdict.message_vi


def test_a_date_that_is_not_text_is_still_refused_by_the_schema(ministry) -> None:
    document = _vaccination()
    document["v"][0]["dt"] = 20210801
    assert _verdict(ministry, document) == ("red", "schema")


# -- no pattern check on fnt/gnt (NO and others) -----------------------------------------------

def test_standardised_names_with_other_signs_are_accepted(ministry) -> None:
    document = _vaccination()
    document["nam"].update(fnt="VÕ-NGUYỄN", gnt="MINH KHANG")
    assert _verdict(ministry, document) == ("green", "complete_series")


def test_standardised_names_keep_their_type_and_length(ministry) -> None:
    document = _vaccination()
    document["nam"]["fnt"] = "A" * 81
    assert _verdict(ministry, document) == ("red", "schema")
    document = _vaccination()
    document["nam"]["gnt"] = 7
    assert _verdict(ministry, document) == ("red", "schema")


# -- several vaccination events rejected (ES) --------------------------------------------------

def test_several_vaccination_events_are_rejected(ministry) -> None:
    document = _vaccination("1.2.1")  # a version whose schema allows several entries
    first = dict(document["v"][0], dn=1, dt="2021-06-01")
    document["v"].append(first)
    verdict = _full(ministry, document)
    assert (verdict.result, verdict.reason) == ("red", "several_events")
    assert "một" in verdict.message_vi
    single = _vaccination("1.2.1")
    assert _verdict(ministry, single) == ("green", "complete_series")


# -- the helpers themselves --------------------------------------------------------------------

def test_normalise_leaves_a_clean_certificate_as_it_is() -> None:
    document = _vaccination()
    assert quirks.normalise(document) is document
    dirty = _vaccination()
    dirty["nam"]["gn"] = " Minh Khang "
    cleaned = quirks.normalise(dirty)
    assert cleaned["nam"]["gn"] == "Minh Khang" and dirty["nam"]["gn"] == " Minh Khang "


def test_relaxed_schema_keeps_every_other_check() -> None:
    from verifier.schema import load_schema

    schema = load_schema("1.3.3")
    relaxed = quirks.relax_schema(schema)
    text = repr(relaxed)
    assert "'format'" not in text
    assert relaxed["properties"]["ver"]["pattern"] == schema["properties"]["ver"]["pattern"]
    assert "pattern" not in relaxed["properties"]["dob"]
    assert "pattern" in repr(schema["$defs"]["person_name"]["properties"]["fnt"])
    assert "pattern" not in relaxed["$defs"]["person_name"]["properties"]["fnt"]
