"""Checkpoint policies: shipped documents, boundaries of each rule, document validation."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.work import count_calls
from verifier.errors import PolicyError, VerificationError
from verifier.policy import (
    DEFAULT_POLICY,
    Decision,
    Policy,
    PolicyDocumentError,
    UnknownPolicy,
    builtin_policies,
    builtin_policy,
)

POLICY_DIR = Path(__file__).parent.parent / "verifier" / "policies"
EXPRESSION_SCHEMA = Path(__file__).parent / "data" / "certlogic" / "schemas" / "CertLogic-expression.json"
UTC = timezone.utc
MS = timedelta(milliseconds=1)


def _person() -> dict[str, Any]:
    return {"ver": "1.3.0", "dob": "1987-03-14",
            "nam": {"fn": "Nguyễn", "gn": "Thị Lan", "fnt": "NGUYEN", "gnt": "THI<LAN"}}


def vaccination(dn: int, sd: int, dt: str, mp: str = "EU/1/20/1528") -> dict[str, Any]:
    return {**_person(), "v": [{"tg": "840539006", "vp": "1119349007", "mp": mp, "ma": "ORG-100030215",
                                "dn": dn, "sd": sd, "dt": dt, "co": "VN", "is": "Bộ Y tế",
                                "ci": "URN:UVCI:01:VN:8F3A9C#K"}]}


def lab_test(sc: str, tr: str = "260415000") -> dict[str, Any]:
    return {**_person(), "t": [{"tg": "840539006", "tt": "LP6464-4", "nm": "PCR", "sc": sc, "tr": tr,
                                "tc": "Bệnh viện Bạch Mai", "co": "VN", "is": "Bộ Y tế",
                                "ci": "URN:UVCI:01:VN:T77Q2#B"}]}


def recovery(fr: str, df: str, du: str) -> dict[str, Any]:
    return {**_person(), "r": [{"tg": "840539006", "fr": fr, "df": df, "du": du, "co": "VN",
                                "is": "Bộ Y tế", "ci": "URN:UVCI:01:VN:R55#P"}]}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def decide(policy: str, dcc: dict[str, Any], now: datetime) -> tuple[str, str]:
    decision = builtin_policy(policy).decide(dcc, now)
    assert isinstance(decision, Decision) and decision.message_en and decision.message_vi
    return decision.result, decision.reason


# --- vn-2021 ------------------------------------------------------------------------------------

DOSE_DAY = "2021-09-01"
FOURTEEN_DAYS = at("2021-09-15T00:00:00+00:00")  # 00:00 UTC, 14 days after the dose date


@pytest.mark.parametrize(
    ("dn", "sd", "now", "expected"),
    [
        (2, 2, FOURTEEN_DAYS, ("green", "complete_series")),
        (2, 2, FOURTEEN_DAYS - MS, ("red", "too_soon_after_dose")),
        (1, 2, FOURTEEN_DAYS, ("yellow", "partial_vaccination")),
        (1, 2, FOURTEEN_DAYS - MS, ("red", "too_soon_after_dose")),
        (1, 2, FOURTEEN_DAYS + timedelta(days=200), ("yellow", "partial_vaccination")),
        (1, 1, FOURTEEN_DAYS, ("green", "complete_series")),  # one-dose vaccine
        (3, 3, FOURTEEN_DAYS, ("green", "complete_series")),  # booster
        (3, 3, FOURTEEN_DAYS - timedelta(days=9), ("red", "too_soon_after_dose")),
        (2, 1, FOURTEEN_DAYS, ("green", "complete_series")),  # booster after Janssen
        (2, 1, FOURTEEN_DAYS - MS, ("red", "too_soon_after_dose")),
        (2, 3, FOURTEEN_DAYS, ("yellow", "partial_vaccination")),
        (2, 2, at("2021-08-31T23:00:00+00:00"), ("red", "too_soon_after_dose")),  # dose in the future
    ],
)
def test_vn_2021_vaccination_boundaries(dn: int, sd: int, now: datetime, expected: tuple[str, str]) -> None:
    dcc = vaccination(dn, sd, DOSE_DAY, mp="EU/1/20/1525" if sd == 1 else "EU/1/20/1528")
    assert decide("vn-2021", dcc, now) == expected


def test_vn_2021_counts_days_from_midnight_utc_whatever_the_time_zone_of_now() -> None:
    vietnam = timezone(timedelta(hours=7))
    dcc = vaccination(2, 2, DOSE_DAY)
    assert decide("vn-2021", dcc, datetime(2021, 9, 15, 7, 0, tzinfo=vietnam)) == ("green", "complete_series")
    assert decide("vn-2021", dcc, datetime(2021, 9, 15, 6, 59, tzinfo=vietnam))[0] == "red"


SAMPLED = "2021-10-01T08:30:00+07:00"  # 01:30 UTC


@pytest.mark.parametrize(
    ("now", "tr", "expected"),
    [
        (at(SAMPLED), "260415000", ("yellow", "negative_test")),
        (at("2021-10-04T01:30:00+00:00"), "260415000", ("yellow", "negative_test")),  # exactly 72 hours
        (at("2021-10-04T01:30:00+00:00") + MS, "260415000", ("red", "test_too_old")),
        (at("2021-10-01T01:29:59+00:00"), "260415000", ("red", "test_in_future")),
        (at("2021-10-02T00:00:00+00:00"), "260373001", ("red", "positive_test")),
        (at("2021-10-02T00:00:00+00:00"), "1240591000000102", ("red", "policy_not_met")),
    ],
)
def test_vn_2021_test_boundaries(now: datetime, tr: str, expected: tuple[str, str]) -> None:
    assert decide("vn-2021", lab_test(SAMPLED, tr), now) == expected


RECOVERY = recovery(fr="2021-04-01", df="2021-04-12", du="2021-09-28")  # 2021-09-28 is fr + 180 days


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at("2021-04-12T00:00:00+00:00"), ("green", "recovered")),
        (at("2021-04-12T00:00:00+00:00") - MS, ("red", "recovery_not_yet_valid")),
        (at("2021-09-28T23:59:59.999+00:00"), ("green", "recovered")),  # through day 180
        (at("2021-09-29T00:00:00+00:00"), ("red", "recovery_expired")),
    ],
)
def test_vn_2021_recovery_boundaries(now: datetime, expected: tuple[str, str]) -> None:
    assert decide("vn-2021", RECOVERY, now) == expected


def test_recovery_is_also_bounded_by_the_certificate_valid_until_date() -> None:
    short = recovery(fr="2021-04-01", df="2021-04-12", du="2021-06-30")
    assert decide("vn-2021", short, at("2021-06-30T23:00:00+00:00")) == ("green", "recovered")
    assert decide("vn-2021", short, at("2021-07-01T00:00:00+00:00")) == ("red", "recovery_expired")


# --- workplace and eu-validity ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dcc", "now", "expected"),
    [
        (vaccination(2, 2, DOSE_DAY), at("2021-09-01T00:00:00+00:00"), ("green", "complete_series")),
        (vaccination(2, 2, DOSE_DAY), at("2021-08-31T23:59:59+00:00"), ("red", "policy_not_met")),
        (vaccination(2, 1, DOSE_DAY), at("2021-09-02T00:00:00+00:00"), ("green", "complete_series")),
        (vaccination(1, 2, DOSE_DAY), at("2021-12-01T00:00:00+00:00"), ("red", "incomplete_series")),
        (lab_test(SAMPLED), at("2021-10-04T01:30:00+00:00"), ("green", "negative_test")),
        (lab_test(SAMPLED), at("2021-10-04T01:30:01+00:00"), ("red", "test_too_old")),
        (lab_test(SAMPLED, "260373001"), at(SAMPLED), ("red", "positive_test")),
        (RECOVERY, at("2021-06-01T00:00:00+00:00"), ("green", "recovered")),
        (RECOVERY, at("2021-10-01T00:00:00+00:00"), ("red", "recovery_expired")),
    ],
)
def test_workplace(dcc: dict[str, Any], now: datetime, expected: tuple[str, str]) -> None:
    assert decide("workplace", dcc, now) == expected


@pytest.mark.parametrize("dcc", [vaccination(1, 2, DOSE_DAY), lab_test(SAMPLED, "260373001"), {}])
def test_eu_validity_passes_every_valid_certificate(dcc: dict[str, Any]) -> None:
    assert decide("eu-validity", dcc, at("2030-01-01T00:00:00+00:00")) == ("green", "valid_certificate")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2021-06-01T00:00:00+00:00", ("green", "valid_certificate")),
        ("2030-01-01T00:00:00+00:00", ("red", "recovery_expired")),
        ("2020-01-01T00:00:00+00:00", ("red", "recovery_not_yet_valid")),
    ],
)
def test_eu_validity_holds_recovery_to_its_dates(now: str, expected: tuple[str, str]) -> None:
    # A recovery certificate is only valid between its df and du dates (the DCC's own validity).
    assert decide("eu-validity", RECOVERY, at(now)) == expected


def test_shipped_policy_options() -> None:
    policies = builtin_policies()
    assert sorted(policies) == ["eu-validity", "vn-2021", "workplace"]
    assert builtin_policy() is policies[DEFAULT_POLICY] and DEFAULT_POLICY == "vn-2021"
    assert policies["vn-2021"].max_trust_age == timedelta(hours=72)
    assert policies["vn-2021"].on_untrusted_clock == "warn"
    assert policies["eu-validity"].on_untrusted_clock == "refuse"
    copies = [Policy.from_document(policy.to_document()) for policy in policies.values()]
    assert len({*policies.values(), *copies}) == 3  # hashable, and equal by value


# --- robustness: odd payloads, bad clocks, privacy ----------------------------------------------


@pytest.mark.parametrize("dcc", [{}, {"v": []}, {"v": [{}]}, {"t": [{"tr": "260415000"}]}, {"r": None}])
def test_payloads_without_the_fields_are_red_not_errors(dcc: dict[str, Any]) -> None:
    for name in ("vn-2021", "workplace"):
        assert decide(name, dcc, at("2021-10-01T00:00:00+00:00")) == ("red", "policy_not_met")


def test_a_rule_that_cannot_be_evaluated_raises_policy_error_without_personal_data() -> None:
    dcc = vaccination(2, 2, "01/09/2021")  # not an ISO date: the DCC schema should have refused it
    with pytest.raises(PolicyError) as caught:
        builtin_policy("vn-2021").decide(dcc, at("2021-10-01T00:00:00+00:00"))
    text = str(caught.value)
    assert caught.value.code == "policy_error" and "complete_series" in text and "plusTime" in text
    for personal in ("01/09/2021", "Nguyễn", "1987-03-14", "URN:UVCI"):
        assert personal not in text


def test_naive_time_is_refused() -> None:
    with pytest.raises(PolicyError, match="timezone-aware"):
        builtin_policy().decide(vaccination(2, 2, DOSE_DAY), datetime(2021, 10, 1))


def test_value_sets_and_clock_reach_the_rules() -> None:
    doc = builtin_policy("eu-validity").to_document()
    doc["name"] = "approved-vaccines"
    doc["value_sets"] = {"approved": ["EU/1/20/1528", "EU/1/21/1529"]}
    doc["outcomes"][0]["when"] = {"and": [
        {"in": [{"var": "payload.v.0.mp"}, {"var": "external.valueSets.approved"}]},
        {"after": [{"plusTime": [{"var": "external.validationClock"}, 0, "day"]},
                   {"plusTime": ["2021-06-01", 0, "day"]}]},
    ]}
    policy = Policy.from_document(doc)
    now = at("2021-07-01T00:00:00+00:00")
    assert policy.decide(vaccination(2, 2, DOSE_DAY), now).result == "green"
    assert policy.decide(vaccination(2, 2, DOSE_DAY, mp="BBIBP-CorV"), now).result == "red"
    assert policy.decide(vaccination(2, 2, DOSE_DAY), at("2021-05-01T00:00:00+00:00")).result == "red"


# --- documents ----------------------------------------------------------------------------------


def _shipped_documents() -> list[Any]:
    return [pytest.param(json.loads(path.read_text("utf-8")), id=path.stem) for path in sorted(POLICY_DIR.glob("*.json"))]


@pytest.mark.parametrize("doc", _shipped_documents())
def test_shipped_rules_follow_the_certlogic_schema(doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(EXPRESSION_SCHEMA.read_text("utf-8")))
    rules = [item["when"] for key in ("outcomes", "refusals") for item in doc.get(key, [])]
    assert rules
    for rule in rules:
        errors = [error.message for error in validator.iter_errors(rule)]
        assert not errors, errors


@pytest.mark.parametrize("doc", _shipped_documents())
def test_shipped_documents_round_trip_and_speak_vietnamese(doc: dict[str, Any]) -> None:
    policy = Policy.from_document(doc)
    assert policy == builtin_policy(policy.name)
    assert Policy.from_document(policy.to_document()) == policy
    assert json.loads(json.dumps(policy.to_document())) == policy.to_document()
    texts = [(policy.title_en, policy.title_vi), (policy.description_en, policy.description_vi)]
    texts += [(o.message_en, o.message_vi) for o in (*policy.outcomes, *policy.refusals, policy.default)]
    for english, vietnamese in texts:
        assert english != vietnamese
        assert any(ch in vietnamese for ch in "ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹáàãéèíìóòõúùý")
    assert policy.default.reason == "policy_not_met" and policy.default.result == "red"


def test_invalid_documents_list_every_problem_with_its_location() -> None:
    doc = copy.deepcopy(builtin_policy("vn-2021").to_document())
    doc["name"] = "VN 2021"
    doc["colour"] = "green"
    doc["on_untrusted_clock"] = "ignore"
    doc["max_trust_age_hours"] = 0
    doc["outcomes"][0]["result"] = "red"
    doc["outcomes"][1]["reason"] = "Recovered!"
    doc["outcomes"][2]["message"] = {"en": "Partly vaccinated"}
    doc["outcomes"][3]["when"] = {"and": [True, {"or": [True, False]}]}
    doc["refusals"][0]["result"] = "yellow"
    del doc["default"]
    with pytest.raises(PolicyDocumentError) as caught:
        Policy.from_document(doc)
    paths = [path for path, _ in caught.value.problems]
    assert paths == ["colour", "name", "max_trust_age_hours", "on_untrusted_clock", "outcomes[0].result",
                     "outcomes[1].reason", "outcomes[2].message", "outcomes[3].when.and[1].or",
                     "refusals[0].result", "default"]
    assert "unknown operation 'or'" in str(caught.value)
    assert isinstance(caught.value, VerificationError) and caught.value.code == "policy_invalid"


def test_deeply_nested_rules_and_value_sets_are_refused_not_crashed() -> None:
    deep: Any = True
    for _ in range(50_000):
        deep = {"!": [deep]}
    doc = builtin_policy("eu-validity").to_document()
    doc["outcomes"][0]["when"] = deep
    nested: Any = []
    for _ in range(50_000):
        nested = [nested]
    doc["value_sets"] = {"deep": nested}
    with pytest.raises(PolicyDocumentError) as caught:
        Policy.from_document(doc)
    assert [path for path, _ in caught.value.problems][0] == "value_sets"
    assert "deeper than" in str(caught.value)


@pytest.mark.parametrize("doc", [None, [], "vn-2021", {"outcomes": []}])
def test_non_documents_are_refused(doc: Any) -> None:
    with pytest.raises(PolicyDocumentError):
        Policy.from_document(doc)


def test_unknown_policy_names_the_known_ones() -> None:
    with pytest.raises(UnknownPolicy, match="eu-validity, vn-2021, workplace"):
        builtin_policy("vn-2022")


def test_common_decisions_stay_on_the_compiled_path_with_bounded_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work of a decision, counted in calls (its speed is bench/certlogic.py's)."""
    policy = builtin_policy("vn-2021")
    cases = [(vaccination(1, 2, DOSE_DAY), at("2021-10-01T00:00:00+00:00")),  # walks every outcome
             (vaccination(2, 2, DOSE_DAY), at("2021-10-01T00:00:00+00:00")),
             (lab_test(SAMPLED), at("2021-10-02T00:00:00+00:00"))]
    expected = [policy.decide(dcc, now) for dcc, now in cases]  # also warms the caches
    exact: list[Any] = []
    monkeypatch.setattr(Policy, "_holds", lambda self, rule, data: exact.append(rule))
    rules = len(policy.outcomes) + len(policy.refusals)
    for (dcc, now), decision in zip(cases, expected, strict=True):
        got, calls = count_calls(lambda: policy.decide(dcc, now))  # noqa: B023 - called right here
        assert got == decision
        # A budget of 8 calls per rule; the compiled rules take about 2 per rule today.
        assert calls <= 8 * rules, (decision.reason, calls)
    assert exact == []  # the exact CertLogic evaluator was never needed
