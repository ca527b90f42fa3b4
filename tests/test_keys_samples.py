"""Every kind the ministry issues verifies with the right colour under each shipped policy."""

from __future__ import annotations

import datetime as dt

import pytest

from verifier import verify
from verifier.bundle import parse_bundle
from verifier.policy import builtin_policies, builtin_policy

from testbed.ministry import POLICIES

NOW = dt.datetime(2021, 10, 1, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def samples(ministry):
    return ministry.samples(NOW)


@pytest.fixture(scope="module")
def store(ministry):
    return ministry.trust_store()


def test_fixture_knows_every_shipped_policy() -> None:
    assert set(POLICIES) == set(builtin_policies())


def test_samples_cover_every_kind_and_failure(samples) -> None:
    names = {s.name for s in samples}
    assert {"complete_series", "one_dose", "recent_dose", "booster", "janssen", "negative_test", "old_test",
            "recent_complete_series", "negative_rapid_test", "old_recovery",
            "positive_test", "recovery", "expired_cwt", "revoked", "forged_unknown_kid", "tampered",
            "garbage_text"} <= names
    assert {s.issued.kind for s in samples if s.issued} == {"v", "t", "r"}


@pytest.mark.parametrize("policy_name", POLICIES)
def test_each_sample_gets_its_colour(samples, store, policy_name: str) -> None:
    policy = builtin_policy(policy_name)
    wrong = []
    for sample in samples:
        verdict = verify(sample.payload, store, NOW, policy)
        want = sample.expected.get(policy_name)
        if want is not None and verdict.result != want:
            wrong.append(f"{sample.name}: {verdict.result}/{verdict.reason}, expected {want}")
        if sample.reason is not None and verdict.reason != sample.reason:
            wrong.append(f"{sample.name}: reason {verdict.reason}, expected {sample.reason}")
    assert wrong == []


def test_verdict_shows_the_holder_and_dose(ministry, store) -> None:
    issued = ministry.issue_vaccination(doses=[(1, 2, "2021-08-01", "astrazeneca"), (2, 2, "2021-09-01", "astrazeneca")],
                                        now=NOW)
    verdict = verify(issued.hc1, store, NOW, builtin_policy("vn-2021"))
    assert verdict.result == "green" and verdict.cert_type == "v"
    assert verdict.holder.family_name == issued.person.family_name
    assert verdict.holder.given_name_t == issued.person.given_name_t and verdict.holder.dob == issued.person.dob
    assert verdict.detail["dn"] == 2 and verdict.detail["dt"] == "2021-09-01"
    assert verdict.kid and verdict.issuer == "VN"


def test_type_restricted_dscs_sign_their_own_kind(ministry, store) -> None:
    checks = [
        (ministry.issue_test(sampled_at=NOW - dt.timedelta(hours=20), now=NOW, signer=ministry.dscs["test"]), "green"),
        (ministry.issue_recovery(now=NOW, signer=ministry.dscs["recovery"]), "green"),
        (ministry.issue_recovery(now=NOW, signer=ministry.dscs["test"]), "red"),
    ]
    results = [verify(issued.hc1, store, NOW, builtin_policy("workplace")).result for issued, _ in checks]
    assert results == [want for _, want in checks]


def test_ps256_certificates_verify(ministry, store) -> None:
    from keys import ca
    from keys.ministry import Signer

    key = ca.generate_key("PS256")
    cert = ca.make_dsc(ministry.csca, ministry.csca_key, key.public_key(), not_before=NOW - dt.timedelta(days=1))
    signer = Signer("rsa", key, cert)
    issued = ministry.issue_vaccination(now=NOW, signer=signer)
    with_rsa = parse_bundle(ministry.bundle(dscs=[cert], policies={}), ministry.anchor_pem).trust_store()
    assert verify(issued.hc1, with_rsa, NOW, builtin_policy("eu-validity")).result == "green"
    assert verify(issued.hc1, store, NOW, builtin_policy("eu-validity")).reason == "kid_unknown"


def test_extra_revocations_and_fresh_stores(ministry) -> None:
    issued = ministry.issue_vaccination(now=NOW)
    policy = builtin_policy("eu-validity")
    assert verify(issued.hc1, ministry.trust_store(), NOW, policy).result == "green"
    verdict = verify(issued.hc1, ministry.trust_store(revoked_ucis=[issued.uci]), NOW, policy)
    assert (verdict.result, verdict.reason) == ("red", "revoked")
