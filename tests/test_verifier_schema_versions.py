"""Each certificate is checked against the DCC schema version it declares; fast and exact paths agree on every version."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import dcc
from keys.people import Person
from verifier import verify
from verifier.errors import CborLimitsError, SchemaError, SchemaVersionError
from verifier.policy import builtin_policy
from verifier.schema import (
    _FORMATS,
    NEWEST,
    SCHEMA_VERSIONS,
    compile_fast_schema,
    compile_schema,
    load_schema,
    schema_version_for,
    validate_dcc,
)

UTC = dt.UTC
NOW = dt.datetime(2021, 10, 1, 8, 0, tzinfo=UTC)
PERSON = Person(family_name="Võ", given_name="Minh Khang", dob="1988-11-02", family_name_t="VO",
                given_name_t="MINH<KHANG")
VN_2021 = builtin_policy("vn-2021")


def test_all_nine_published_versions_are_shipped() -> None:
    assert SCHEMA_VERSIONS == ("1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.2.1", "1.3.0", "1.3.1", "1.3.2", "1.3.3")
    for version in SCHEMA_VERSIONS:
        assert load_schema(version)["$comment"] == f"Schema version {version}"


@pytest.mark.parametrize("ver, chosen", [
    ("1.0.0", "1.0.0"), ("1.2.1", "1.2.1"), ("1.3.3", "1.3.3"),
    ("1.0.4", "1.0.1"),   # an unpublished patch (IE's test data): the newest of its major.minor
    ("1.2.7", "1.2.1"), ("1.3.9", "1.3.3"),
    ("1.4.0", "1.3.3"),   # a newer minor only adds: the newest of the major
    (None, NEWEST), ("1.0", NEWEST), (130, NEWEST), ("v1.3.0", NEWEST),  # the newest names the fault
])
def test_the_schema_version_rule(ver: Any, chosen: str) -> None:
    assert schema_version_for(ver) == chosen


@pytest.mark.parametrize("ver", ["2.0.0", "0.9.0", "10.0.0"])
def test_another_major_version_is_refused_with_its_own_reason(ver: str) -> None:
    with pytest.raises(SchemaVersionError) as caught:
        schema_version_for(ver)
    assert caught.value.code == "schema_version"
    document = vaccination("1.3.0")
    document["ver"] = ver
    with pytest.raises(SchemaVersionError):
        validate_dcc(document)


@pytest.mark.parametrize("ver", [None, "1.0", "latest"])
def test_a_missing_or_malformed_ver_is_a_schema_error_on_ver(ver: Any) -> None:
    document = vaccination("1.3.0")
    if ver is None:
        del document["ver"]
    else:
        document["ver"] = ver
    with pytest.raises(SchemaError) as caught:
        validate_dcc(document)
    assert caught.value.path in ("/ver", "") and not isinstance(caught.value, SchemaVersionError)


def vaccination(ver: str, dn: int = 2, sd: int = 2, date: str = "2021-08-01") -> dict:
    document = dcc.vaccination(PERSON, dn, sd, date, "astrazeneca", uci="URN:UVCI:01:VN:SV#1")
    document["ver"] = ver
    return document


def two_doses(ver: str, latest_first_in_list: bool) -> dict:
    document = vaccination(ver, 2, 2, "2021-08-01")
    first = copy.deepcopy(document["v"][0])
    first.update(dn=1, dt="2021-06-01", ci="URN:UVCI:01:VN:SV#0")
    document["v"] = [document["v"][0], first] if latest_first_in_list else [first, document["v"][0]]
    return document


@pytest.mark.parametrize("ver", ["1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.2.1"])
@pytest.mark.parametrize("latest_listed_first", [True, False])
def test_an_older_certificate_with_two_doses_is_refused(ministry, ver: str, latest_listed_first: bool) -> None:
    # The schema of these versions allows several entries; the EU's special-case handling says
    # verifiers shall reject several vaccination events (ES): one event per certificate.
    store = ministry.trust_store()
    document = two_doses(ver, latest_listed_first)
    validate_dcc(document)
    verdict = verify(ministry.issue(document, now=NOW).hc1, store, NOW, VN_2021)
    assert (verdict.result, verdict.reason) == ("red", "several_events")
    assert "2 vaccination events" in verdict.error_detail


@pytest.mark.parametrize("ver", ["1.3.0", "1.3.3"])
def test_from_1_3_0_two_entries_are_refused(ministry, ver: str) -> None:
    verdict = verify(ministry.issue(two_doses(ver, True), now=NOW).hc1, ministry.trust_store(), NOW, VN_2021)
    assert (verdict.result, verdict.reason) == ("red", "schema")
    assert "/v" in verdict.error_detail


@pytest.mark.parametrize("ver", SCHEMA_VERSIONS)
def test_every_version_refuses_two_certificate_types(ministry, ver: str) -> None:
    # Before 1.3.0 the schema allows it; the rule GR-EU-0000 does not, and the signer's key
    # usage is only checked for one type.
    document = vaccination(ver)
    document["t"] = dcc.covid_test(PERSON, "2021-09-30T10:00:00Z", uci="URN:UVCI:01:VN:SV#T")["t"]
    with pytest.raises(SchemaError, match="exactly one of"):
        validate_dcc(document)
    none = vaccination(ver)
    del none["v"]
    with pytest.raises(SchemaError):
        validate_dcc(none)
    test_only = ministry.issue(document, now=NOW, signer=ministry.dscs["vaccination"])
    assert verify(test_only.hc1, ministry.trust_store(), NOW, VN_2021).reason == "schema"


def _test_without_centre(ver: str) -> dict:
    document = dcc.covid_test(PERSON, "2021-09-30T10:00:00Z", uci="URN:UVCI:01:VN:SV#T")
    document["ver"] = ver
    del document["t"][0]["tc"]
    return document


def _edit(document: dict, path: str, value: Any) -> dict:
    _apply(document, path, value)
    return document


# (what, the first version that accepts it, the document for a version, what the refusal says).
# A year of birth alone (1.0.x: format date) is accepted by every version: formats and the dob
# pattern are not checked (the EU's special cases, tests/test_quirks.py).
ALLOWANCES = [
    ("a tenth dose (up to 1.2.1 dn and sd stop at 9)", "1.3.0",
     lambda ver: _edit(vaccination(ver, 9, 2), "v.0.dn", 10), "/v/0/dn: is above 9"),
    ("a test with no testing centre", "1.3.0", _test_without_centre, "/t/0/tc: is missing"),
    ("only a standardised forename", "1.3.2",
     lambda ver: _edit(_edit(vaccination(ver), "nam.fnt", DELETE), "nam.fn", DELETE), "/nam"),
    ("a forename of 51 characters", "1.3.0", lambda ver: _edit(vaccination(ver), "nam.gn", "A" * 51),
     "/nam/gn: is longer than 50"),
]


@pytest.mark.parametrize("ver", SCHEMA_VERSIONS)
@pytest.mark.parametrize("what, since, make, refusal", ALLOWANCES, ids=[a[0] for a in ALLOWANCES])
def test_what_a_version_allows(ver: str, what: str, since: str, make, refusal: str) -> None:
    document = make(ver)
    if SCHEMA_VERSIONS.index(ver) >= SCHEMA_VERSIONS.index(since):
        validate_dcc(document)
    else:
        with pytest.raises(SchemaError) as caught:
            validate_dcc(document)
        assert refusal in str(caught.value), what


# -- the compiled fast path, the exact path and jsonschema agree on every version -------------

def _reference(version: str) -> jsonschema.Validator:
    # jsonschema is the independent reading of the schema's structure; the two formats are pinned to
    # chot's definitions (a date may be written as a date-time, as upstream validators accept), so a
    # difference can only come from compiling the structure.
    checker = jsonschema.FormatChecker()
    for name, function in _FORMATS.items():
        checker.checks(name)(function)
    return jsonschema.Draft202012Validator(load_schema(version), format_checker=checker)


_COMPILED = {v: (compile_fast_schema(v), compile_schema(v), _reference(v)) for v in SCHEMA_VERSIONS}

PATHS = {
    "v": ["ver", "dob", "nam", "nam.fn", "nam.fnt", "nam.gn", "nam.gnt", "v", "v.0", "v.0.tg", "v.0.vp", "v.0.mp",
          "v.0.ma", "v.0.dn", "v.0.sd", "v.0.dt", "v.0.co", "v.0.is", "v.0.ci", "v.1", "t", "r", "extra"],
    "t": ["ver", "dob", "nam.fnt", "t.0.tg", "t.0.tt", "t.0.nm", "t.0.ma", "t.0.sc", "t.0.dr", "t.0.tr",
          "t.0.tc", "t.0.co", "t.0.is", "t.0.ci", "t.1", "v"],
    "r": ["ver", "dob", "nam.gnt", "r.0.tg", "r.0.fr", "r.0.co", "r.0.is", "r.0.df", "r.0.du", "r.0.ci", "r.1"],
}
GENERIC = st.one_of(
    st.sampled_from([None, "", "VN", "840539006", "a\nb", 2.0, 2.5, True, False]), st.integers(-2, 12),
    st.text(max_size=6), st.lists(st.integers(0, 3), max_size=2), st.builds(dict), st.builds(list))
DATES = st.sampled_from(["1985", "1985-04", "1985-04-31", "1899-12-31", "2100-01-01", "2021-08-01", "20210801",
                         "2021-08-01T10:00:00Z", "2021-08-01T25:00:00Z", "2021-08-01 10:00:00", "2021-08-01T10:00Z",
                         "x1985-04-12", "1985-04-12x", ""])
TEXTS = st.sampled_from(["", "VN", "vn", "VNM", "A" * 10, "A" * 11, "TRAN<VAN", "tran", "TRAN VAN", "X" * 50,
                         "X" * 51, "X" * 80, "X" * 81, "1.3.0", "1.0", "1x3x0", "URN:UVCI:01:VN:1"])
# Per field, the values near its schema's edges (bounds, lengths, patterns, formats), and any value.
FOCUS = {"dn": st.integers(-1, 12), "sd": st.integers(-1, 12), "dob": DATES, "dt": DATES, "sc": DATES, "dr": DATES,
         "fr": DATES, "df": DATES, "du": DATES}


def values_for(path: str) -> st.SearchStrategy[Any]:
    focus = FOCUS.get(path.rsplit(".", 1)[-1], TEXTS)
    return st.one_of(focus, focus, GENERIC, st.just(DELETE), st.just("copy"))


DELETE = object()


def _apply(document: dict, path: str, value: Any) -> None:
    value = value if value is DELETE else copy.deepcopy(value)
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            if index >= len(node):
                return
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return
    if isinstance(node, list) and last.isdigit():
        index = int(last)
        if value is DELETE:
            if index < len(node):
                del node[index]
        elif index < len(node):
            node[index] = value
        else:
            node.append(copy.deepcopy(node[0]) if node and value == "copy" else value)
    elif isinstance(node, dict):
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value


def _base(kind: str) -> dict:
    return {"v": lambda: dcc.vaccination(PERSON, 1, 2, "2021-08-01", "pfizer", uci="U1"),
            "t": lambda: dcc.covid_test(PERSON, "2021-09-01T10:00:00Z", uci="U2"),
            "r": lambda: dcc.recovery(PERSON, "2021-07-01", uci="U3")}[kind]()


@settings(max_examples=int(__import__("os").environ.get("CHOT_HYPOTHESIS_EXAMPLES", "600")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SCHEMA_VERSIONS), st.sampled_from(["v", "t", "r"]), st.integers(1, 4), st.data())
def test_fast_exact_and_jsonschema_agree_on_every_version(version: str, kind: str, count: int, data) -> None:
    document = _base(kind)
    document["ver"] = version
    for _ in range(count):
        path = data.draw(st.sampled_from(PATHS[kind]))
        _apply(document, path, data.draw(values_for(path)))
    fast, exact, reference = _COMPILED[version]
    try:
        exact(document)
        exact_ok = True
    except CborLimitsError:  # chot's size limits are not part of the schema
        return
    except SchemaError:
        exact_ok = False
    assert fast(document) == exact_ok, f"fast and exact differ on {version}: {document!r:.300}"
    assert reference.is_valid(document) == exact_ok, (
        f"jsonschema and chot differ on {version}: {list(reference.iter_errors(document))[:1]} {document!r:.300}")


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_the_issued_documents_of_every_kind_pass_every_version(version: str) -> None:
    for kind in ("v", "t", "r"):
        document = _base(kind)
        document["ver"] = version
        assert _COMPILED[version][0](document)
        _COMPILED[version][1](document)
        assert _COMPILED[version][2].is_valid(document)


def _edges(node: dict, schema: dict) -> list[Any]:
    """Values at and beyond the edges of one schema node (its bounds, lengths, pattern, format, type)."""
    while "$ref" in node:
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**schema["$defs"][node["$ref"].rsplit("/", 1)[-1]], **extra}
    values: list[Any] = [None, DELETE, 7, "7", [], {}]
    if node.get("type") == "string":
        if "maxLength" in node:
            values += ["X" * node["maxLength"], "X" * (node["maxLength"] + 1)]
        values += ["", "a", "AAA", "A" * 11, "1985", "1985-04", "TRAN<VAN", "tran", "1.3.0", "1.0"]
        values += ["2021-08-01", "2021-02-30", "2021-08-01T10:00:00Z", "2021-08-01T24:00:00Z", "x2021-08-01"]
    if node.get("type") == "integer":
        for bound in ("minimum", "maximum"):
            if bound in node:
                values += [node[bound] - 1, node[bound], node[bound] + 1]
        values += [2.0, 2.5, True]
    return values


def _leaves(schema: dict, kind: str) -> list[tuple[str, dict]]:
    entry = {"v": "vaccination_entry", "t": "test_entry", "r": "recovery_entry"}[kind]
    leaves = [(f"{kind}.0.{field}", node) for field, node in schema["$defs"][entry]["properties"].items()]
    leaves += [(f"nam.{field}", node) for field, node in schema["$defs"]["person_name"]["properties"].items()]
    leaves += [(field, node) for field, node in schema["properties"].items()]
    return leaves


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_fast_exact_and_jsonschema_agree_at_every_edge_of_every_field(version: str) -> None:
    fast, exact, reference = _COMPILED[version]
    schema = load_schema(version)
    checked = refused = 0
    for kind in ("v", "t", "r"):
        for path, node in _leaves(schema, kind):
            for value in _edges(node, schema):
                document = _base(kind)
                document["ver"] = version
                _apply(document, path, value)
                try:
                    exact(document)
                    exact_ok = True
                except SchemaError:
                    exact_ok = False
                refused += not exact_ok
                checked += 1
                assert fast(document) == exact_ok, (version, path, value)
                assert reference.is_valid(document) == exact_ok, (version, path, value)
    assert checked > 500 and 0 < refused < checked
