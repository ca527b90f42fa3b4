"""Every coded field of the DCC in and out of its value set, per schema version, and value sets from the bundle."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json

import pytest

from keys import bundle as bundle_mod
from keys import dcc
from keys.people import Person
from verifier import VerifyOptions, verify
from verifier.bundle import BundleFormatError, parse_bundle
from verifier.errors import SchemaError, ValueSetError
from verifier.schema import SCHEMA_VERSIONS, load_schema, validate_dcc
from verifier.valuesets import CODED_FIELDS, NAMES, RAPID_TEST, ValueSets, shipped, shipped_documents

UTC = dt.timezone.utc
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
PERSON = Person(family_name="Phạm", given_name="Thu Hà", dob="1990-03-04", family_name_t="PHAM",
                given_name_t="THU<HA")


class AcceptAll:
    name = "accept-all"
    on_untrusted_clock = "warn"
    max_trust_age = None

    def decide(self, dcc_: object, now: dt.datetime) -> tuple[str, str, str, str]:
        return "green", "valid", "Valid.", "Hợp lệ."


# Plausible codes that are not in their value set: ISO alpha-3 for a country, the SARS-CoV-2
# organism instead of the disease, SNOMED "negative" instead of "not detected", and so on.
UNLISTED = {
    "tg": "840533007", "vp": "J07BX99", "mp": "EU/1/21/9999", "ma": "ORG-100000000", "co": "VNM",
    "tt": "LP12345-6", "tr": "260385009",
}
UNLISTED_DEVICE = "9999"


def base(group: str, version: str = "1.3.0") -> dict:
    """A valid DCC of `group` declaring `version` (the documents keys.dcc makes fit every version)."""
    document = {"v": lambda: dcc.vaccination(PERSON, 2, 2, "2021-08-01", "pfizer", uci="URN:UVCI:01:VN:VS#1"),
                "t": lambda: dcc.covid_test(PERSON, "2021-09-30T10:00:00Z", test_type="rat", uci="URN:UVCI:01:VN:VS#2"),
                "r": lambda: dcc.recovery(PERSON, "2021-07-01", uci="URN:UVCI:01:VN:VS#3")}[group]()
    document["ver"] = version
    return document


def unlisted(field: str, group: str) -> str:
    return UNLISTED_DEVICE if (group, field) == ("t", "ma") else UNLISTED[field]


def test_every_coded_field_of_every_group_is_covered() -> None:
    schema_coded = set()
    for version in SCHEMA_VERSIONS:
        schema = load_schema(version)
        for entry, group in (("vaccination_entry", "v"), ("test_entry", "t"), ("recovery_entry", "r")):
            for field, node in schema["$defs"][entry]["properties"].items():
                target = node.get("$ref", "").rsplit("/", 1)[-1]
                if "valueset-uri" in node or "valueset-uri" in schema["$defs"].get(target, {}):
                    schema_coded.add((group, field))
    # Every field the schemas tie to a value set (1.3.x ties `co` too), and `tt`, coded from 1.0.0 on.
    assert schema_coded <= set(CODED_FIELDS)
    assert set(CODED_FIELDS) - schema_coded <= {("t", "tt")}
    assert NAMES == {name for name, _, _ in CODED_FIELDS.values()}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("group, field", sorted(CODED_FIELDS))
def test_a_code_outside_its_value_set_is_refused_in_every_version(version: str, group: str, field: str) -> None:
    document = base(group, version)
    validate_dcc(document)  # the untouched document is valid in this version
    document[group][0][field] = unlisted(field, group)
    if field == "tt":  # a test that is no longer a rapid test names no device to check
        document[group][0].pop("ma")
    with pytest.raises(ValueSetError) as caught:
        validate_dcc(document)
    err = caught.value
    assert err.field == f"{group}.{field}" and err.value == unlisted(field, group)
    assert err.path == f"/{group}/0/{field}"
    for message in (err.message_en, err.message_vi):
        assert f"{group}.{field}" in message and unlisted(field, group) in message
    validate_dcc(document, value_sets=False)  # the schema itself has no objection


@pytest.mark.parametrize("group, field", sorted(CODED_FIELDS))
def test_every_listed_code_is_accepted(group: str, field: str) -> None:
    name = CODED_FIELDS[(group, field)][0]
    codes = list(shipped_documents()[name]["valueSetValues"])
    assert codes
    for code in codes:
        document = base(group)
        document[group][0][field] = code
        if field == "tt" and code != RAPID_TEST:
            document[group][0].pop("ma", None)
        validate_dcc(document)


def test_codes_marked_inactive_still_count() -> None:
    documents = shipped_documents()
    inactive = [code for code, entry in documents["vaccine-medicinal-product"]["valueSetValues"].items()
                if entry.get("active") is False]
    assert "Inactivated-SARS-CoV-2-Vero-Cell" in inactive  # deprecated, still on 2021 certificates
    document = base("v")
    document["v"][0]["mp"] = "Inactivated-SARS-CoV-2-Vero-Cell"
    validate_dcc(document)


def test_a_rapid_test_must_name_a_listed_device_and_a_pcr_test_need_not() -> None:
    rapid = base("t")
    assert rapid["t"][0]["tt"] == RAPID_TEST
    del rapid["t"][0]["ma"]
    with pytest.raises(ValueSetError) as caught:
        validate_dcc(rapid)
    assert caught.value.field == "t.ma" and caught.value.value is None
    assert "t.ma" in caught.value.message_en and "t.ma" in caught.value.message_vi
    pcr = dcc.covid_test(PERSON, "2021-09-30T10:00:00Z", test_type="pcr", uci="URN:UVCI:01:VN:VS#4")
    validate_dcc(pcr)
    pcr["t"][0]["ma"] = UNLISTED_DEVICE  # EU rule TR-EU-0002: the device list is for rapid tests
    validate_dcc(pcr)


def test_every_entry_is_checked_where_a_version_allows_several() -> None:
    document = base("v", "1.2.1")
    second = copy.deepcopy(document["v"][0])
    second.update(dn=1, dt="2021-07-01", mp=UNLISTED["mp"])
    document["v"].append(second)
    with pytest.raises(ValueSetError) as caught:
        validate_dcc(document)
    assert caught.value.path == "/v/1/mp"


def test_a_code_that_is_not_text_is_a_schema_error_not_a_crash() -> None:
    document = base("v")
    document["v"][0]["co"] = 84
    with pytest.raises(SchemaError) as caught:
        validate_dcc(document)
    assert not isinstance(caught.value, ValueSetError)


def test_a_long_or_odd_code_is_quoted_back_short_and_printable() -> None:
    document = base("v")
    document["v"][0]["ma"] = "X" * 45 + "\n\x1b[31m"
    with pytest.raises(ValueSetError) as caught:
        validate_dcc(document)
    assert caught.value.value is not None and len(caught.value.value) <= 41 and caught.value.value.isprintable()


# -- end to end, and value sets from the trust bundle ------------------------------------------

def test_a_signed_certificate_with_an_unknown_code_is_red_naming_it(ministry) -> None:
    store = ministry.trust_store()
    document = base("v")
    document["v"][0]["co"] = "VNM"
    verdict = verify(ministry.issue(document, now=NOW).hc1, store, NOW, AcceptAll())
    assert (verdict.result, verdict.reason) == ("red", "value_set")
    assert "VNM" in verdict.message_en and "v.co" in verdict.message_vi
    assert verdict.holder is not None  # signed data: the officer still sees whose it is
    assert verdict.event_fields() == {"result": "red", "reason": "value_set", "policy": "accept-all",
                                      "trust_version": 1}
    relaxed = verify(ministry.issue(document, now=NOW).hc1, store, NOW, AcceptAll(),
                     VerifyOptions(check_value_sets=False))
    assert relaxed.result == "green"


def test_bundle_value_sets_replace_the_shipped_ones(ministry) -> None:
    new_vaccine = copy.deepcopy(shipped_documents()["vaccine-medicinal-product"])
    new_vaccine["valueSetDate"] = "2026-11-30"
    new_vaccine["valueSetValues"]["VN-NANOCOVAX"] = {"display": "Nanocovax", "lang": "en", "active": True,
                                                      "system": "https://vn.example/vaccines", "version": "1"}
    devices = ["1833", "2108"]  # a newer device list, without the shipped list's "1232"
    store = ministry.trust_store(value_sets={"vaccine-medicinal-product": new_vaccine, "test-manf": devices})
    shipped_store = ministry.trust_store()

    document = base("v")
    document["v"][0]["mp"] = "VN-NANOCOVAX"
    text = ministry.issue(document, now=NOW).hc1
    assert verify(text, store, NOW, AcceptAll()).result == "green"
    assert verify(text, shipped_store, NOW, AcceptAll()).reason == "value_set"

    rapid = ministry.issue(base("t"), now=NOW).hc1  # names device 1232
    assert verify(rapid, shipped_store, NOW, AcceptAll()).result == "green"
    refused = verify(rapid, store, NOW, AcceptAll())
    assert refused.reason == "value_set" and "1232" in refused.message_en
    # Sets the bundle does not carry stay the shipped ones.
    assert store.value_sets["country-2-codes"] == shipped()["country-2-codes"]
    assert store.value_sets["test-manf"] == frozenset(devices)


def test_an_older_bundle_without_value_sets_keeps_the_shipped_ones(ministry) -> None:
    data = ministry.bundle(policies={})
    payload = json.loads(base64.b64decode(json.loads(data)["payload"]))
    assert "value_sets" not in payload  # what bundles made before value sets looked like
    bundle = parse_bundle(data, ministry.anchor_pem)
    assert bundle.value_sets == {}
    assert bundle.trust_store().value_sets.codes == shipped().codes
    assert verify(ministry.issue(base("t"), now=NOW).hc1, bundle.trust_store(), NOW, AcceptAll()).result == "green"


@pytest.mark.parametrize("value_sets, problem", [
    (["test-manf"], "`value_sets` is not an object"),
    ({"test-manf": []}, "no codes"),
    ({"test-manf": {"valueSetId": "x"}}, "valueSetValues"),
    ({"test-manf": {"valueSetValues": {}}}, "no codes"),
    ({"country-2-codes": ["VN", 7]}, "non-empty text"),
    ({"country-2-codes": "VN"}, "neither"),
])
def test_a_malformed_bundle_value_set_refuses_the_bundle(ministry, value_sets, problem: str) -> None:
    payload = json.loads(base64.b64decode(json.loads(ministry.bundle(policies={}))["payload"]))
    payload["value_sets"] = value_sets
    data = bundle_mod.sign_bundle(json.dumps(payload).encode("utf-8"), ministry.trust_key)
    with pytest.raises(BundleFormatError, match=problem):
        parse_bundle(data, ministry.anchor_pem)


def test_a_value_set_this_unit_does_not_check_is_ignored(ministry) -> None:
    bundle = parse_bundle(ministry.bundle(policies={}, value_sets={"vaccine-future-field": ["A"]}),
                          ministry.anchor_pem)
    assert bundle.trust_store().value_sets.codes == shipped().codes


def test_value_sets_are_built_once_per_bundle(ministry) -> None:
    bundle = parse_bundle(ministry.bundle(policies={}, value_sets={"test-manf": ["1232"]}), ministry.anchor_pem)
    assert bundle.trust_store().value_sets is bundle.trust_store().value_sets
    assert isinstance(bundle.coded_value_sets(), ValueSets)
    assert all(isinstance(codes, frozenset) for codes in bundle.coded_value_sets().codes.values())


# -- what the project itself issues uses listed codes -------------------------------------------

@pytest.mark.parametrize("vaccine", sorted(dcc.PRODUCTS))
def test_every_vaccine_keys_can_issue_uses_listed_codes(vaccine: str) -> None:
    validate_dcc(dcc.vaccination(PERSON, 1, dcc.PRODUCTS[vaccine].series_doses, "2021-08-01", vaccine, uci="U"))


@pytest.mark.parametrize("test_type", sorted(dcc.TEST_TYPES))
@pytest.mark.parametrize("result", sorted(dcc.TEST_RESULTS))
def test_every_test_keys_can_issue_uses_listed_codes(test_type: str, result: str) -> None:
    validate_dcc(dcc.covid_test(PERSON, "2021-09-30T10:00:00Z", result=result, test_type=test_type, uci="U"))


def test_the_demo_population_verifies_as_made(tmp_path) -> None:
    from chot.demo.population import make_ministry, make_population
    from keys.bundle import publish
    from verifier.policy import builtin_policy

    now = dt.datetime.now(UTC).replace(microsecond=0)
    ministry = make_ministry(tmp_path / "ministry", "demo-pass", now)
    population = make_population(ministry, "demo-pass", 150, seed=3, now=now)
    data = publish(ministry, "demo-pass", 1, now=now, value_sets=shipped_documents())
    store = parse_bundle(data, ministry.anchor.read_bytes()).trust_store()
    policy = builtin_policy("vn-2021")
    red_kinds = {"positive_test", "old_test", "recent_dose", "expired", "revoked", "forged", "tampered", "garbage"}
    seen = set()
    for certificate in population:
        verdict = verify(certificate.payload, store, now, policy)
        seen.add(certificate.kind)
        assert verdict.reason not in ("value_set", "schema", "schema_version"), (certificate.kind, verdict.error_detail)
        assert (verdict.result == "red") == (certificate.kind in red_kinds), (certificate.kind, verdict.reason)
    assert {"complete_series", "negative_test", "recovery", "booster"} <= seen
