"""Trust bundles: signing round-trips through verifier.bundle.parse_bundle; versions only go up; revocation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import bundle, ca, dcc, revoke
from keys.errors import BundleVersionError, HC1DecodeError, KeysError, MinistryDirError
from keys.ministry import MinistryDir, init_ministry
from keys.people import Person
from verifier.bundle import BundleError, BundleSignatureError, parse_bundle
from verifier.revocation import countrycode_uci_hash, uci_hash

NOW = dt.datetime(2021, 10, 1, 8, tzinfo=dt.timezone.utc)


def test_fixture_bundle_round_trips(ministry) -> None:
    data = ministry.bundle(version=7, revoked_ucis=["URN:UVCI:01:VN:EXTRA"], policies={"p": {"x": 1}},
                           issued_at=NOW)
    parsed = parse_bundle(data, ministry.anchor_pem, min_version=7)
    assert parsed.version == 7 and parsed.issued_at == NOW
    assert parsed.next_update == NOW + dt.timedelta(days=1)
    assert parsed.policies == {"p": {"x": 1}}
    assert set(parsed.revocations["UCI"]) == {uci_hash(ministry.revoked_uci), uci_hash("URN:UVCI:01:VN:EXTRA")}
    by_kid = {base64.b64decode(entry["kid"]): entry for entry in parsed.dscs}
    for signer in ministry.dscs.values():
        assert by_kid[signer.kid]["types"] == signer.types and by_kid[signer.kid]["country"] == "VN"
    store = parsed.trust_store()
    assert store.version == 7 and len(store) == len(ministry.dscs)
    assert store.find(ministry.dscs["test"].kid)[0].types == frozenset({"t"})
    assert not store.find(ministry.rogue.kid)


def test_document_matches_the_documented_format(ministry) -> None:
    document = json.loads(ministry.bundle(issued_at=NOW))
    assert document["format"] == "chot-trust-bundle/1" and set(document) == {"format", "payload", "signature", "signer"}
    assert base64.b64decode(document["signer"]) == ca.signer_id(ministry.trust_key.public_key())
    payload = json.loads(base64.b64decode(document["payload"]))
    assert set(payload) == {"version", "issued_at", "next_update", "issuer", "dscs", "revocations", "policies"}
    assert payload["issued_at"] == "2021-10-01T08:00:00Z"
    assert set(payload["revocations"]) == {"UCI", "COUNTRYCODEUCI", "SIGNATURE"}


def test_bundle_signed_by_another_key_or_altered_is_refused(ministry) -> None:
    with pytest.raises(BundleSignatureError):
        parse_bundle(ministry.bundle(signer=ca.generate_trust_list_key()), ministry.anchor_pem)
    document = json.loads(ministry.bundle())
    payload = json.loads(base64.b64decode(document["payload"]))
    payload["version"] = 99
    document["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(BundleError):
        parse_bundle(json.dumps(document).encode(), ministry.anchor_pem)


@pytest.mark.parametrize("kwargs, message", [
    ({"version": 0}, "at least 1"), ({"version": True}, "whole number"),
    ({"revocations": {"SERIAL": []}}, "unknown revocation"), ({"revocations": {"UCI": ["abc"]}}, "32 hex"),
])
def test_bad_payload_fields_are_refused(kwargs, message) -> None:
    args = {"version": 1, "dscs": [], "issued_at": NOW, **kwargs}
    with pytest.raises(KeysError, match=message):
        bundle.bundle_payload(**args)


def test_trust_list_key_must_be_p256(ministry) -> None:
    with pytest.raises(KeysError, match="P-256"):
        bundle.sign_bundle(b"{}", ca.generate_key("PS256"))  # type: ignore[arg-type]  # the wrong key is the point


@pytest.fixture(scope="module")
def ministry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_ministry(tmp_path_factory.mktemp("ministry-template") / "ministry", "pw",
                         now=NOW - dt.timedelta(days=1)).root


@pytest.fixture
def ministry_dir(ministry_template: Path, tmp_path: Path) -> MinistryDir:
    # A copy per test (modes kept), each test's own to change; making one costs seconds of PBKDF2.
    return MinistryDir(shutil.copytree(ministry_template, tmp_path / "ministry"))


def test_publish_versions_only_increase(ministry_dir: MinistryDir) -> None:
    assert bundle.last_version(ministry_dir) == 0
    first = bundle.publish(ministry_dir, "pw", 3, now=NOW, policies={})
    assert parse_bundle(first, ministry_dir.anchor.read_bytes()).version == 3
    for stale in (3, 2):
        with pytest.raises(BundleVersionError, match="must be greater than the last published version 3"):
            bundle.publish(ministry_dir, "pw", stale, now=NOW, policies={})
    bundle.publish(ministry_dir, "pw", 4, now=NOW, policies={})
    history = json.loads(ministry_dir.bundles.read_text())
    assert history["last_version"] == 4 and [h["version"] for h in history["published"]] == [3, 4]


def test_revocations_are_stored_as_hashes_and_reach_the_bundle(ministry_dir: MinistryDir, ministry) -> None:
    issued = ministry.issue_vaccination(now=NOW)
    store = revoke.RevocationStore(ministry_dir)
    assert store.add(revoke.hashes_for_hc1(issued.hc1)) == 3
    assert store.add(revoke.hashes_for_hc1(issued.hc1)) == 0  # idempotent
    assert store.add(revoke.hashes_for_uci("URN:UVCI:01:VN:OTHER", "VN")) == 2
    assert issued.uci not in ministry_dir.revocations.read_text()
    parsed = parse_bundle(bundle.publish(ministry_dir, "pw", 1, now=NOW, policies={}), ministry_dir.anchor.read_bytes())
    assert uci_hash(issued.uci) in parsed.revocations["UCI"]
    assert countrycode_uci_hash("VN", issued.uci) in parsed.revocations["COUNTRYCODEUCI"]
    assert len(parsed.revocations["SIGNATURE"]) == 1


def test_revoking_bad_input_gives_reasons(ministry_dir: MinistryDir) -> None:
    with pytest.raises(HC1DecodeError, match="prefix"):
        revoke.hashes_for_hc1("not a certificate")
    with pytest.raises(KeysError, match="empty"):
        revoke.hashes_for_uci("  ", "VN")
    with pytest.raises(MinistryDirError, match="not an initialised"):
        bundle.publish(MinistryDir(ministry_dir.root.parent / "nowhere"), "pw", 1)


def test_shipped_policies_travel_in_the_bundle(ministry) -> None:
    from verifier.policy import Policy, builtin_policies

    parsed = parse_bundle(ministry.bundle(), ministry.anchor_pem)
    shipped = builtin_policies()
    assert set(parsed.policies) == set(shipped) >= {"vn-2021", "workplace", "eu-validity"}
    for name, document in parsed.policies.items():
        assert Policy.from_document(document).to_document() == shipped[name].to_document()


# --- revoking odd certificates: valid-shaped documents, then one mutation each -----------------

_PERSON = Person(family_name="Phạm", given_name="Minh Châu", dob="1992-11-20", family_name_t="PHAM",
                 given_name_t="MINH<CHAU")
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=12)
_KEEPS = ("none", "odd_uci", "padded_uci", "extra_field", "lower_country")  # still one entry with ci and co
_BREAKS = ("drop_ci", "drop_co", "ci_not_text", "blank_ci", "co_not_letters", "empty_group", "group_not_list",
           "entry_not_map", "two_groups", "no_group")
_MUTATION = st.sampled_from(_KEEPS) | st.sampled_from(_KEEPS) | st.sampled_from(_BREAKS)  # two in three keep


def _valid_document(kind: str, uci: str) -> dict:
    if kind == "v":
        return dcc.vaccination(_PERSON, 2, 2, "2021-08-01", "pfizer", uci=uci)
    if kind == "t":
        return dcc.covid_test(_PERSON, "2021-09-30T08:00:00+07:00", uci=uci)
    return dcc.recovery(_PERSON, "2021-08-01", uci=uci)


def _mutate(document: dict, kind: str, mutation: str, junk: object, odd_text: str) -> dict:
    entry = document[kind][0]
    if mutation == "odd_uci":
        entry["ci"] = odd_text or "x"  # any text, Vietnamese letters and emoji included
    elif mutation == "padded_uci":
        entry["ci"] = f" {entry['ci']} "  # hashed as written, as a verifier hashes it
    elif mutation == "extra_field":
        entry["xx"] = junk
    elif mutation == "lower_country":
        entry["co"] = entry["co"].lower()
    elif mutation in ("drop_ci", "drop_co"):
        del entry[mutation[-2:]]
    elif mutation == "ci_not_text":
        entry["ci"] = junk if not isinstance(junk, str) else [junk]
    elif mutation == "blank_ci":
        entry["ci"] = "  "
    elif mutation == "co_not_letters":
        entry["co"] = "V1"
    elif mutation == "empty_group":
        document[kind] = []
    elif mutation == "group_not_list":
        document[kind] = entry
    elif mutation == "entry_not_map":
        document[kind] = [junk if not isinstance(junk, dict) else [junk]]
    elif mutation == "two_groups":
        document["r" if kind != "r" else "v"] = [dict(entry)]
    elif mutation == "no_group":
        del document[kind]
    return document


def _spec_hashes(document: dict, signature: bytes) -> dict[str, list[str]] | None:
    """What revoking must give, from the EU definition (see tests/test_revocation_spec.py), or
    None when the document has no single entry with a text `ci` and a letter code `co`."""
    groups = [document[k] for k in ("v", "t", "r") if document.get(k)]
    if len(groups) != 1 or not isinstance(groups[0], list) or not isinstance(groups[0][0], dict):
        return None
    uci, country = groups[0][0].get("ci"), groups[0][0].get("co")
    if not isinstance(uci, str) or not uci.strip() or not isinstance(country, str) or not country.isalpha():
        return None
    def first16(data: bytes) -> str:
        return hashlib.sha256(data).digest()[:16].hex()

    return {"UCI": [first16(uci.encode())], "COUNTRYCODEUCI": [first16((country.upper() + uci).encode())],
            "SIGNATURE": [first16(signature[:32])]}  # ES256: r, the first half


def test_revoking_odd_certificates_gives_the_specified_hashes_or_a_reason(ministry) -> None:
    from keys import hc1

    now = dt.datetime(2021, 10, 1, tzinfo=dt.timezone.utc)
    outcomes: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None, database=None)
    @given(kind=st.sampled_from(["v", "t", "r"]), mutation=_MUTATION, junk=_JSON,
           odd_text=st.text(max_size=60))
    def check(kind: str, mutation: str, junk: object, odd_text: str) -> None:
        document = _mutate(_valid_document(kind, dcc.new_uci()), kind, mutation, junk, odd_text)
        text = hc1.encode(document, ministry.general.key, ministry.general.kid, issued_at=now, expires_at=now)
        expected = _spec_hashes(document, hc1.unpack(text).signature)
        try:
            found = revoke.hashes_for_hc1(text)
        except KeysError as refused:  # HC1DecodeError included: a reason, never a crash
            assert expected is None, (mutation, refused)
            assert str(refused)
            outcomes["refused"] += 1
            return
        assert found == expected, mutation
        outcomes["hashed"] += 1

    check()
    # Valid-shaped documents: most of them reach the hash comparison, and the refusals are tried too
    # (random JSON alone almost never held a `ci` and a `co` and only ever tested the refusal).
    assert outcomes["hashed"] > 0.5 * sum(outcomes.values()) and outcomes["refused"] >= 20, outcomes
