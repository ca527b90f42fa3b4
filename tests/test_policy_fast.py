"""The compiled fast path of Policy.decide (verifier.fastpolicy) agrees with the exact CertLogic evaluator."""

from __future__ import annotations

import copy
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from verifier.certlogic import parse_instant, truthiness
from verifier.errors import PolicyError
from verifier.fastpolicy import clock_ms, compile_rules
from verifier.policy import Decision, Policy, builtin_policies, builtin_policy

UTC = timezone.utc


def exact_decide(policy: Policy, dcc: Any, now: datetime) -> Decision:
    """Policy.decide without the fast path: every rule through the CertLogic closures."""
    clock = now.astimezone(UTC).isoformat(timespec="milliseconds")
    data = {"payload": dcc, "external": {"validationClock": clock, "valueSets": policy.value_sets}}
    for rule in (*policy.outcomes, *policy.refusals):
        try:
            holds = truthiness(rule.expression.evaluate(data))
        except Exception as err:
            raise PolicyError(str(err)) from err
        if holds is None:
            raise PolicyError("neither true nor false")
        if holds:
            return rule.decision
    return policy.default.decision


def outcome_of(decide: Any, *args: Any) -> Any:
    try:
        return decide(*args)
    except PolicyError:
        return "error"


def base_certificates() -> list[dict[str, Any]]:
    person = {"ver": "1.3.0", "dob": "1990-01-02", "nam": {"fn": "Lê", "fnt": "LE"}}
    return [
        {**person, "v": [{"tg": "840539006", "dn": 2, "sd": 2, "dt": "2021-09-01", "mp": "EU/1/20/1528",
                          "co": "VN", "ci": "URN:UVCI:01:VN:1"}]},
        {**person, "v": [{"tg": "840539006", "dn": 1, "sd": 2, "dt": "2021-09-20", "mp": "EU/1/20/1528"}]},
        {**person, "t": [{"tg": "840539006", "tt": "LP6464-4", "sc": "2021-09-30T10:00:00Z", "tr": "260415000"}]},
        {**person, "t": [{"tg": "840539006", "tt": "LP6464-4", "sc": "2021-09-30T10:00:00+07:00", "tr": "260373001"}]},
        {**person, "r": [{"tg": "840539006", "fr": "2021-06-01", "df": "2021-06-12", "du": "2021-12-01"}]},
    ]


ODD_VALUES = [None, True, False, 0, 1, 2, -1, 1.0, 2.5, "", "x", "2021-09-01", "2021-09-01T00:00:00Z",
              "2021-02-30", "99999-01-01", [], [1], {}, {"a": 1}, (2,), 10**30]


def mutations(dcc: dict[str, Any], rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Copies of `dcc` with one leaf or container replaced by a value of another type."""
    out = []
    for _ in range(count):
        copied = copy.deepcopy(dcc)
        kind = next(k for k in ("v", "t", "r") if k in copied)
        entry = copied[kind][0]
        choice = rng.random()
        if choice < 0.7:
            entry[rng.choice(sorted(entry))] = rng.choice(ODD_VALUES)
        elif choice < 0.8:
            copied[kind] = rng.choice(ODD_VALUES)
        elif choice < 0.9:
            copied[kind] = tuple(copied[kind])  # a tuple array, as cbor2 may give inside tags
        else:
            copied[rng.choice("vtr")] = [dict(entry)]  # a second certificate type alongside
        out.append(copied)
    return out


NOWS = [datetime(2021, 10, 1, 8, 0, tzinfo=UTC), datetime(2021, 9, 15, 0, 0, tzinfo=UTC),
        datetime(2021, 10, 3, 9, 59, 59, 999999, tzinfo=timezone(timedelta(hours=7))),
        datetime(2022, 6, 1, tzinfo=UTC), datetime(2021, 9, 1, tzinfo=UTC)]


@pytest.mark.parametrize("name", sorted(builtin_policies()))
def test_fast_decisions_agree_with_certlogic_on_mutated_certificates(name: str) -> None:
    policy = builtin_policy(name)
    rng = random.Random(name)
    cases = 0
    for dcc in base_certificates():
        for variant in [dcc, *mutations(dcc, rng, 60)]:
            for now in NOWS:
                assert outcome_of(policy.decide, variant, now) == outcome_of(exact_decide, policy, variant, now)
                cases += 1
    assert cases > 1000


@pytest.mark.parametrize("name", sorted(builtin_policies()))
def test_the_fast_path_decides_ordinary_certificates_itself(name: str) -> None:
    fast = builtin_policy(name)._fast
    for dcc in base_certificates():
        decided, _ = fast(dcc, clock_ms(NOWS[0]))
        assert decided, fast.source


def test_odd_values_make_the_fast_path_step_aside() -> None:
    fast = builtin_policy("vn-2021")._fast
    dcc = base_certificates()[0]
    dcc["v"][0]["dn"] = 2.0  # a float: CertLogic's truthiness and comparisons differ from Python's
    assert fast(dcc, clock_ms(NOWS[0])) == (False, 0)
    dcc["v"][0].update(dn=2, dt="not a date")
    assert fast(dcc, clock_ms(NOWS[0])) == (False, 0)


def test_a_rule_outside_the_subset_runs_exactly_from_where_the_fast_path_stopped() -> None:
    doc = builtin_policy("workplace").to_document()
    doc["outcomes"].insert(1, {
        "result": "green", "reason": "dose_counted", "message": {"en": "x", "vi": "x"},
        "when": {"reduce": [{"var": "payload.v"}, {"+": [{"var": "accumulator"}, 1]}, 0]}})
    policy = Policy.from_document(doc)
    dcc = base_certificates()[1]  # 1 of 2 doses: not a completed series, so rule 1 decides
    assert policy._fast(dcc, clock_ms(NOWS[0])) == (False, 1)
    assert policy.decide(dcc, NOWS[0]).reason == "dose_counted"
    assert policy.decide(dcc, NOWS[0]) == exact_decide(policy, dcc, NOWS[0])


@pytest.mark.parametrize("rule", [
    {"if": [{"var": "payload.v.0.dn"}, {"===": [{"var": "payload.v.0.co"}, "VN"]}, False]},
    {"!": [{"in": [{"var": "payload.v.0.mp"}, ["EU/1/20/1528", "EU/1/21/1529"]]}]},
    {"<": [0, {"var": "payload.v.0.dn"}, {"var": "payload.v.0.sd"}]},
    {"and": [{"var": "payload"}, {"var": "nothing.here"}]},
    {"after": [{"plusTime": [{"var": "payload.v.0.dt"}, 100_000_000, "day"]},  # out of range: an error
               {"plusTime": [{"var": "external.validationClock"}, 0, "day"]}]},
    {"before": [{"plusTime": [{"var": "payload.v.0.dt"}, -3, "hour"]},
                {"plusTime": [{"var": "external.validationClock"}, 2, "day"]},
                {"plusTime": [{"var": "payload.v.0.dt"}, 400, "day"]}]},
])
def test_each_supported_operation_matches_certlogic(rule: Any) -> None:
    doc = builtin_policy("eu-validity").to_document()
    doc["outcomes"] = [{"result": "green", "reason": "ok", "message": {"en": "x", "vi": "x"}, "when": rule}]
    policy = Policy.from_document(doc)
    assert "return True, 0" in policy._fast.source  # compiled, not left to the exact evaluator
    rng = random.Random(3)
    for dcc in [base_certificates()[0], *mutations(base_certificates()[0], rng, 80)]:
        for now in NOWS:
            assert outcome_of(policy.decide, dcc, now) == outcome_of(exact_decide, policy, dcc, now)


def test_clock_ms_matches_the_iso_text_the_rules_see() -> None:
    rng = random.Random(5)
    for _ in range(300):
        offset = timezone(timedelta(minutes=rng.randrange(-14 * 60, 14 * 60)))
        now = datetime(rng.randrange(1, 9999), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
                       rng.randrange(60), rng.randrange(60), rng.randrange(1_000_000), tzinfo=offset)
        try:
            text = now.astimezone(UTC).isoformat(timespec="milliseconds")
        except OverflowError:
            continue
        assert clock_ms(now) == parse_instant(text)


def test_unsupported_rules_compile_to_an_immediate_hand_over() -> None:
    fast = compile_rules([{"var": "external.validationClock"}, {"var": "payload.v"}])
    assert fast({"v": [1]}, 0) == (False, 0)
