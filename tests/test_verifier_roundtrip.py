"""Round trips: certificates issued by `keys` verify with the right colour under every shipped policy."""

from __future__ import annotations

import datetime as dt

import pytest

from verifier import VerifyOptions, verify
from verifier.policy import builtin_policies, builtin_policy

UTC = dt.timezone.utc
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def samples(ministry):
    return ministry.samples(NOW)


@pytest.fixture(scope="module")
def store(ministry):
    return ministry.trust_store(version=3)


def test_samples_cover_every_kind_and_failure(samples):
    kinds = {s.issued.kind for s in samples if s.issued is not None}
    assert kinds == {"v", "t", "r"}
    assert {s.reason for s in samples if s.reason} >= {"signature", "kid_unknown", "revoked", "key_usage",
                                                       "cwt_expired", "zlib_bomb", "prefix"}


@pytest.mark.parametrize("policy_name", ["vn-2021", "workplace", "eu-validity"])
def test_each_sample_gets_its_colour(samples, store, policy_name):
    policy = builtin_policy(policy_name)
    wrong = []
    for sample in samples:
        if policy_name not in sample.expected:
            continue
        verdict = verify(sample.payload, store, NOW, policy, VerifyOptions(uci_key=b"unit"))
        if verdict.result != sample.expected[policy_name] or (sample.reason and verdict.reason != sample.reason):
            wrong.append((sample.name, verdict.result, verdict.reason, verdict.error_detail))
        assert verdict.policy == policy_name and verdict.trust_version == 3
        assert verdict.message_en and verdict.message_vi
    assert wrong == []


def test_green_verdict_carries_what_the_officer_needs(samples, store):
    sample = next(s for s in samples if s.name == "complete_series")
    verdict = verify(sample.payload, store, NOW, builtin_policy("vn-2021"), VerifyOptions(uci_key=b"unit"))
    person = sample.issued.person
    assert verdict.holder.family_name == person.family_name and verdict.holder.dob == person.dob
    assert verdict.holder.family_name_t == person.family_name_t
    assert verdict.cert_type == "v" and verdict.detail["dn"] == verdict.detail["sd"] == 2
    assert verdict.kid is not None and verdict.issuer == "VN"
    assert verdict.uci_hash and sample.issued.uci not in str(verdict.event_fields())


def test_every_builtin_policy_decides_without_error(samples, store):
    for name, policy in builtin_policies().items():
        for sample in samples:
            verdict = verify(sample.payload, store, NOW, policy)
            assert verdict.reason not in {"internal", "policy_error"}, (name, sample.name, verdict.error_detail)


def test_stale_trust_uses_the_policy_limit(samples, store):
    sample = next(s for s in samples if s.name == "complete_series")
    policy = builtin_policy("vn-2021")
    old = VerifyOptions(trust_age=policy.max_trust_age + dt.timedelta(hours=1))
    assert verify(sample.payload, store, NOW, policy, old).reason == "trust_stale"
    fresh = VerifyOptions(trust_age=policy.max_trust_age - dt.timedelta(hours=1))
    assert verify(sample.payload, store, NOW, policy, fresh).result == "green"
