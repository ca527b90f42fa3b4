"""EU value sets and business rules in the gateway's formats: the real snapshot, and rules made here.

A country's real rules (Czechia's 38, from the shipped snapshot) are evaluated on certificates
issued here and compared rule by rule with an independent CertLogic implementation
(panzi-json-logic's `certLogic`).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from json_logic.cert_logic import certLogic

from keys import dcc, hc1
from keys.people import Person
from verifier.certlogic import truthiness
from verifier.eurules import (
    EuRulesPolicy,
    RulesError,
    read_rules,
    read_value_sets,
    select,
)
from verifier.valuesets import shipped
from verifier.verify import verify

UTC = dt.UTC
SNAPSHOT = Path(__file__).resolve().parent.parent / "verifier/data/snapshots/covpass-2023-12-11"
RULES = read_rules((SNAPSHOT / "eu-rules.json").read_bytes())
VALUE_SETS, VALUE_SET_CODES = read_value_sets((SNAPSHOT / "eu-value-sets.json").read_bytes())
PERSON = Person(family_name="Võ", given_name="Minh Khang", dob="1988-11-02", family_name_t="VO",
                given_name_t="MINH<KHANG")
RAW_LOGIC = {(r["Identifier"], r["Country"], tuple(int(p) for p in r["Version"].split("."))): r["Logic"]
             for r in json.loads((SNAPSHOT / "eu-rules.json").read_text())}
NOWS = [dt.datetime(2022, 9, 1, 8, tzinfo=UTC), dt.datetime(2023, 6, 1, 8, tzinfo=UTC)]


def _certificates(now: dt.datetime) -> list[dict[str, Any]]:
    day = lambda days: (now - dt.timedelta(days=days)).date()
    out = [dcc.vaccination(PERSON, dn, sd, day(ago), product)
           for dn, sd in ((1, 2), (2, 2), (3, 3), (1, 1), (2, 1))
           for ago in (3, 20, 200, 400)
           for product in ("pfizer", "janssen", "sputnik-v", "sinopharm")]
    out += [dcc.covid_test(PERSON, now - dt.timedelta(hours=hours), result=result, test_type=kind)
            for hours in (5, 30, 80) for result in ("negative", "positive") for kind in ("pcr", "rat")]
    out += [dcc.recovery(PERSON, day(ago)) for ago in (5, 30, 170, 200)]
    return out


def _policy(country: str) -> EuRulesPolicy:
    return EuRulesPolicy(RULES, country, VALUE_SET_CODES)


def test_the_snapshot_reads_whole() -> None:
    assert len(RULES) == 271
    assert {r.country for r in RULES} >= {"CZ", "DE", "AT", "FR"}
    assert len(VALUE_SET_CODES["covid-19-lab-test-manufacturer-and-name"]) == 299
    assert set(VALUE_SETS) == {"country-2-codes", "disease-agent-targeted", "test-manf", "test-result", "test-type",
                               "vaccine-mah-manf", "vaccine-medicinal-product", "vaccine-prophylaxis"}


@pytest.mark.parametrize("country", ["CZ", "FR", "LT"])
def test_a_countrys_real_rules_agree_with_an_independent_certlogic(country: str) -> None:
    policy = _policy(country)
    compared = 0
    outcomes = set()
    for now in NOWS:
        for document in _certificates(now):
            iat, exp = int((now - dt.timedelta(days=1)).timestamp()), int((now + dt.timedelta(days=300)).timestamp())
            ours = policy.evaluate(document, now, iat=iat, exp=exp, issuer_country="VN")
            data = {"payload": document, "external": policy.external(now, iat=iat, exp=exp, issuer_country="VN")}
            for rule, outcome in ours:
                logic = RAW_LOGIC[(rule.identifier, rule.country, rule.version)]
                assert outcome == truthiness(certLogic(logic, data)), (rule.identifier, document)
                compared += 1
                outcomes.add(outcome)
    assert compared > 200 and outcomes == {True, False}


def test_czech_rules_decide_real_looking_certificates() -> None:
    now = NOWS[1]
    policy = _policy("CZ")
    complete = dcc.vaccination(PERSON, 2, 2, (now - dt.timedelta(days=30)).date(), "pfizer")
    assert policy.decide_claims(complete, now, iat=None, exp=None, issuer_country="VN")[:2] == \
        ("green", "eu_rules_passed")
    too_soon = dcc.vaccination(PERSON, 2, 2, (now - dt.timedelta(days=3)).date(), "pfizer")
    result, reason, message_en, _ = policy.decide_claims(too_soon, now, iat=None, exp=None, issuer_country="VN")
    assert (result, reason) == ("red", "eu_rule_failed") and "CZ rule VR-CZ-" in message_en
    sputnik = dcc.vaccination(PERSON, 2, 2, (now - dt.timedelta(days=30)).date(), "sputnik-v")
    assert policy.decide_claims(sputnik, now, iat=None, exp=None, issuer_country="VN")[0] == "red"
    positive = dcc.covid_test(PERSON, now - dt.timedelta(hours=5), result="positive")
    assert policy.decide_claims(positive, now, iat=None, exp=None, issuer_country="VN")[0] == "red"
    assert _policy("VN").decide(complete, now)[:2] == ("yellow", "eu_no_rules")


def test_verify_passes_the_cwt_to_the_rules(ministry) -> None:
    now = NOWS[1]
    signer = ministry.general
    document = dcc.vaccination(PERSON, 2, 2, (now - dt.timedelta(days=30)).date(), "pfizer")
    text = hc1.encode(document, signer.key, signer.kid, issuer="VN", issued_at=now - dt.timedelta(days=1),
                      expires_at=now + dt.timedelta(days=300))
    store = ministry.trust_store(value_sets=VALUE_SETS)
    assert verify(text, store, now, _policy("CZ")).reason == "eu_rules_passed"
    # a rule made here that reads issuerCountryCode and exp: only the CWT can feed them
    rule = _rule("GR-XX-0001", country="CZ", logic={"and": [
        {"===": [{"var": "external.issuerCountryCode"}, "VN"]},
        {"after": [{"plusTime": [{"var": "external.exp"}, 0, "day"]},
                   {"plusTime": [{"var": "external.validationClock"}, 0, "day"]}]}]})
    made = EuRulesPolicy(read_rules([rule]), "CZ", VALUE_SET_CODES)
    assert verify(text, store, now, made).reason == "eu_rules_passed"
    short = hc1.encode(document, signer.key, signer.kid, issuer="VN", issued_at=now - dt.timedelta(days=1),
                       expires_at=now + dt.timedelta(hours=1))
    assert verify(short, store, now, made).reason == "eu_rules_passed"
    assert verify(short, store, now + dt.timedelta(hours=2), made).reason == "cwt_expired"


def _rule(identifier: str, *, country: str = "CZ", kind: str = "General", type_: str = "Acceptance",
          version: str = "1.0.0", valid_from: str = "2021-01-01T00:00:00Z", valid_to: str = "2030-01-01T00:00:00Z",
          logic: Any = True, region: str | None = None) -> dict[str, Any]:
    return {"Identifier": identifier, "Type": type_, "Country": country, "Region": region, "CertificateType": kind,
            "ValidFrom": valid_from, "ValidTo": valid_to, "EngineVersion": "1.0.0", "Version": version,
            "Logic": logic, "Description": [{"lang": "en", "desc": identifier}]}


def test_rules_are_chosen_by_window_type_version_region_and_issuer() -> None:
    now = dt.datetime(2023, 6, 1, tzinfo=UTC)
    rules = read_rules([
        _rule("GR-CZ-0001", version="1.0.0", logic=False),
        _rule("GR-CZ-0001", version="1.0.10", logic=True),  # the newest version wins (not the text order)
        _rule("VR-CZ-0001", kind="Vaccination"),
        _rule("TR-CZ-0001", kind="Test", logic=False),  # another type: not applied to a vaccination
        _rule("VR-CZ-0002", kind="Vaccination", valid_from="2024-01-01T00:00:00Z", logic=False),  # not yet
        _rule("VR-CZ-0003", kind="Vaccination", valid_to="2023-01-01T00:00:00Z", logic=False),  # over
        _rule("VR-CZ-0004", kind="Vaccination", region="BY", logic=False),  # a region's rule
        _rule("GR-DE-0001", country="DE", logic=False),  # another country
        _rule("IR-VN-0001", country="VN", type_="Invalidation", logic=False),  # the issuer's invalidation
    ])
    chosen = select(rules, country="CZ", issuer_country="ES", kind="v", now=now)
    assert [(r.identifier, r.version) for r in chosen] == [("GR-CZ-0001", (1, 0, 10)), ("VR-CZ-0001", (1, 0, 0))]
    with_issuer = select(rules, country="CZ", issuer_country="VN", kind="v", now=now)
    assert "IR-VN-0001" in [r.identifier for r in with_issuer]
    document = dcc.vaccination(PERSON, 2, 2, "2023-05-01", "pfizer")
    policy = EuRulesPolicy(rules, "CZ", VALUE_SET_CODES)
    assert policy.decide_claims(document, now, iat=None, exp=None, issuer_country="ES")[0] == "green"
    assert policy.decide_claims(document, now, iat=None, exp=None, issuer_country="VN")[:2] == \
        ("red", "eu_rule_failed")
    assert "VR-CZ-0004" in [r.identifier for r in select(rules, country="CZ", issuer_country=None, kind="v",
                                                          now=now, region="BY")]


def test_a_rule_that_cannot_be_evaluated_is_open_not_green() -> None:
    rules = read_rules([_rule("GR-CZ-0001", logic={"plusTime": [{"var": "payload.v.0.mp"}, 1, "day"]})])
    document = dcc.vaccination(PERSON, 2, 2, "2023-05-01", "pfizer")
    outcome = EuRulesPolicy(rules, "CZ", {}).decide(document, dt.datetime(2023, 6, 1, tzinfo=UTC))
    assert outcome[:2] == ("yellow", "eu_rule_open")


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"a": 1}', (SNAPSHOT / "eu-rules.json").read_bytes()[:5000],
                                  json.dumps([_rule("X", logic={"no-such-op": [1]})]).encode(),
                                  json.dumps([_rule("X", type_="Other")]).encode(),
                                  json.dumps([{**_rule("X"), "ValidFrom": "yesterday"}]).encode()])
def test_a_bad_rules_file_is_refused_whole(data: bytes) -> None:
    with pytest.raises(RulesError) as err:
        read_rules(data)
    assert err.value.code == "rules_format" and err.value.message_vi


def test_value_sets_replace_the_shipped_ones(ministry) -> None:
    # A rapid test device on the 2023 list but not on the shipped 2021 one
    now = NOWS[1]
    device = min(set(VALUE_SETS["test-manf"]["valueSetValues"]) - shipped()["test-manf"])
    document = dcc.covid_test(PERSON, now - dt.timedelta(hours=5), test_type="rat", device=device)
    signer = ministry.dscs["test"]
    text = hc1.encode(document, signer.key, signer.kid, issuer="VN", issued_at=now - dt.timedelta(hours=4),
                      expires_at=now + dt.timedelta(days=3))
    from verifier.policy import builtin_policy

    assert verify(text, ministry.trust_store(), now, builtin_policy("vn-2021")).reason == "value_set"
    assert verify(text, ministry.trust_store(value_sets=VALUE_SETS), now, builtin_policy("vn-2021")).result != "red"
    with pytest.raises(RulesError):
        read_value_sets(json.dumps([{"valueSetId": "covid-19-lab-result", "valueSetValues": {}}]))
