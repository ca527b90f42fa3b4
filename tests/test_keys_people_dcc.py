"""Synthetic people, ICAO transliteration, and DCC JSON valid against schema 1.3.x and the value sets."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import dcc
from keys.errors import InvalidCertificateRequest, InvalidPerson
from keys.people import Person, icao_transliterate, synthetic_people

# The EU value sets and DCC schema the project ships (verifier/data, with their licence and source).
VALUESETS = Path(__file__).resolve().parents[1] / "verifier" / "data" / "valuesets"
PERSON = Person(family_name="Nguyễn", given_name="Văn An", dob="1985-04-12")


def _valueset(name: str) -> set[str]:
    data = json.loads((VALUESETS / f"{name}.json").read_text(encoding="utf-8"))
    return set(data["valueSetValues"])


@pytest.fixture(scope="module")
def validator() -> jsonschema.Validator:
    schema = json.loads((VALUESETS.parent / "schemas" / "1.3.3.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("native, icao", [
    ("Nguyễn Văn An", "NGUYEN<VAN<AN"),
    ("Đặng Thị Ngọc-Hằng", "DANG<THI<NGOC<HANG"),
    ("Trương  Đình   Đông", "TRUONG<DINH<DONG"),
    ("Huỳnh Bảo Vy", "HUYNH<BAO<VY"),
    ("d'Červenková Panklová", "DCERVENKOVA<PANKLOVA"),
])
def test_icao_transliteration(native: str, icao: str) -> None:
    assert icao_transliterate(native) == icao


def test_synthetic_people_are_deterministic_vietnamese_and_plausible() -> None:
    people = synthetic_people(200, seed=7)
    assert people == synthetic_people(200, seed=7)
    assert people != synthetic_people(200, seed=8)
    assert any(re.search(r"[^\x00-\x7f]", p.family_name + p.given_name) for p in people)  # diacritics kept
    for person in people:
        assert re.fullmatch(r"[A-Z<]+", person.full_name_t)
        assert person.family_name_t == icao_transliterate(person.family_name)
        born = dt.date.fromisoformat(person.dob)
        assert dt.date(1930, 1, 1) <= born <= dt.date(2021, 1, 1)
    assert len({(p.family_name, p.given_name, p.dob) for p in people}) > 150


def test_person_repr_hides_personal_data() -> None:
    assert "Nguy" not in repr(PERSON) and "1985" not in repr(PERSON)


def test_person_from_json_accepts_dcc_keys_and_rejects_bad_records() -> None:
    person = Person.from_mapping({"fn": "Lê", "gn": "Thị Mai", "dob": "1990-02-03"})
    assert person.nam() == {"fn": "Lê", "fnt": "LE", "gn": "Thị Mai", "gnt": "THI<MAI"}
    with pytest.raises(InvalidPerson, match="unknown key"):
        Person.from_mapping({"fn": "Lê", "dob": "1990", "nickname": "x"})
    with pytest.raises(InvalidPerson, match="dob is required"):
        Person.from_mapping({"fn": "Lê"})
    with pytest.raises(InvalidPerson, match="dob"):
        Person.from_mapping({"fn": "Lê", "dob": "03/02/1990"})
    with pytest.raises(InvalidPerson, match="A-Z"):
        Person.from_mapping({"fn": "Lê", "fnt": "le", "dob": "1990"})


def _documents() -> list[dict]:
    rng = random.Random(1)
    docs = [dcc.vaccination(PERSON, dn, sd, "2021-08-20", name)
            for name, (dn, sd) in [("pfizer", (1, 2)), ("astrazeneca", (2, 2)), ("moderna", (3, 3)),
                                   ("janssen", (1, 1)), ("janssen", (2, 1)), ("sinopharm-vero", (2, 2)),
                                   ("sputnik-v", (1, 2)), ("abdala", (3, 3)), ("BBIBP-CorV", (2, 2))]]
    sampled = dt.datetime(2021, 9, 1, 8, 30, tzinfo=dt.timezone.utc)
    docs += [dcc.covid_test(PERSON, sampled, result=r, test_type=t, uci=dcc.new_uci(rng))
             for r in ("negative", "positive") for t in ("pcr", "rat")]
    docs.append(dcc.recovery(PERSON, "2021-07-01"))
    return docs


def test_every_document_is_schema_valid_and_uses_value_sets(validator: jsonschema.Validator) -> None:
    products, holders, prophylaxis = (_valueset("vaccine-medicinal-product"), _valueset("vaccine-mah-manf"),
                                      _valueset("vaccine-prophylaxis"))
    test_types, results = _valueset("test-type"), _valueset("test-result")
    for document in _documents():
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == []
        kind = dcc.kind_of(document)
        entry = document[kind][0]
        assert entry["tg"] in _valueset("disease-agent-targeted") and entry["co"] in _valueset("country-2-codes")
        assert re.fullmatch(r"URN:UVCI:01:VN:[A-Z0-9]{26}", entry["ci"]) and dcc.uci_of(document) == entry["ci"]
        if kind == "v":
            assert entry["mp"] in products and entry["ma"] in holders and entry["vp"] in prophylaxis
        elif kind == "t":
            assert entry["tt"] in test_types and entry["tr"] in results
            assert ("ma" in entry) == (entry["tt"] == dcc.TEST_TYPES["rat"])


def test_recovery_defaults_and_dates() -> None:
    entry = dcc.recovery(PERSON, dt.date(2021, 7, 1))["r"][0]
    assert (entry["fr"], entry["df"], entry["du"]) == ("2021-07-01", "2021-07-12", "2021-12-28")
    with pytest.raises(InvalidCertificateRequest, match="cannot end before"):
        dcc.recovery(PERSON, "2021-07-01", valid_from="2021-08-01", valid_until="2021-07-15")


@pytest.mark.parametrize("call, message", [
    (lambda: dcc.vaccination(PERSON, 0, 2, "2021-08-01", "pfizer"), "dn must be"),
    (lambda: dcc.vaccination(PERSON, 1, 2, "2021-08-01", "unobtainium"), "unknown vaccine"),
    (lambda: dcc.vaccination(PERSON, 1, 2, "01/08/2021", "pfizer"), "YYYY-MM-DD"),
    (lambda: dcc.covid_test(PERSON, dt.datetime(2021, 9, 1), result="negative"), "time zone"),
    (lambda: dcc.covid_test(PERSON, "2021-09-01T08:00:00Z", result="maybe"), "test result"),
])
def test_bad_requests_give_reasons(call, message: str) -> None:
    with pytest.raises(InvalidCertificateRequest, match=message):
        call()


def test_uci_generation_is_random_or_seeded() -> None:
    assert dcc.new_uci() != dcc.new_uci()
    assert dcc.new_uci(random.Random(3)) == dcc.new_uci(random.Random(3))


def test_document_for_each_kind_and_an_unknown_one() -> None:
    from keys import issue
    from keys.errors import KeysError

    now = dt.datetime(2021, 10, 1, tzinfo=dt.timezone.utc)
    kinds = {kind: dcc.kind_of(issue.document_for(kind, PERSON, now=now)) for kind in issue.KIND_LETTERS}
    assert kinds == issue.KIND_LETTERS
    assert issue.document_for("vaccination", PERSON, now=now)["v"][0]["dt"] == "2021-09-01"
    with pytest.raises(KeysError, match="unknown certificate kind"):
        issue.document_for("booster", PERSON, now=now)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_transliteration_always_fits_the_schema_pattern(name: str) -> None:
    assert re.fullmatch(r"[A-Z<]*", icao_transliterate(name))
