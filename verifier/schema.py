"""The DCC JSON schema of the version a certificate declares, compiled once into plain Python checks.

A general JSON Schema library costs several times a signature check per certificate; the DCC
schema uses a small subset of JSON Schema (type, required, properties, items, min/maxItems,
maxLength, pattern, format, minimum/maximum, oneOf/anyOf of `required`, local `$ref`), so each
version is compiled, at its first use, into nested closures (this module, naming the failing
field) and one generated function (verifier.fastschema, answering valid or not).

Every published schema version is shipped (verifier/data/schemas). A certificate is checked
against the version its `ver` declares (see `schema_version_for` for the rule when that version
is not shipped), then against the rule every version shares: exactly one of `v`, `t`, `r`. The
codes in coded fields are checked after the schema, by verifier.valuesets.

The same walk enforces the CBOR size limits inside the DCC (verifier.cbor: strings, arrays,
maps, also in fields the schema does not know), so the DCC is walked once, not twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date
from importlib import resources
from typing import Any

from verifier.cbor import (
    MAP_TYPES,
    MAX_ITEMS,
    MAX_STRING,
    check_limits,
    extras_within_limits,
)
from verifier.errors import CborLimitsError, SchemaError, SchemaVersionError
from verifier.fastschema import check_keywords, compile_fast
from verifier.quirks import relax_schema
from verifier.valuesets import ValueSets, shipped

Check = Callable[[Any], None]

# Exact-type tests first: isinstance() against an ABC costs more than the rest of a check.
_MAP_TYPES = MAP_TYPES
_LIST_TYPES = (list, tuple)
_GROUPS = ("v", "t", "r")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|z|[+-]\d{2}:?\d{2})?"
)


def _is_full_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    # Issuers (SG) write dates as date-times; the DCC schema's format is an annotation and
    # upstream validators accept them, so a valid date-time also counts as a date.
    return _is_full_date(text) or (len(text) > 10 and _is_date_time(text))


def _is_date_time(text: str) -> bool:
    match = _DATE_TIME.fullmatch(text)
    if not match or not _is_full_date(match.group(1)):
        return False
    hour, minute, second = (int(match.group(i)) for i in (2, 3, 4))
    return hour < 24 and minute < 60 and second < 61


_FORMATS: dict[str, Callable[[str], bool]] = {"date": _is_date, "date-time": _is_date_time}


def _semver(text: str) -> tuple[int, int, int]:
    major, minor, patch = text.split(".")
    return int(major), int(minor), int(patch)


def _shipped_versions() -> tuple[str, ...]:
    names = [p.name[:-5] for p in resources.files("verifier.data").joinpath("schemas").iterdir()
             if p.name.endswith(".json")]
    return tuple(sorted(names, key=_semver))


SCHEMA_VERSIONS: tuple[str, ...] = _shipped_versions()
"""Every shipped DCC schema version, oldest first."""
NEWEST = SCHEMA_VERSIONS[-1]
_SEMVER = re.compile(r"(\d{1,4})\.(\d{1,4})\.(\d{1,4})")


def load_schema(version: str) -> Any:
    """The shipped combined DCC schema of `version` (e.g. "1.3.3") as JSON.

    :raises KeyError: when that version is not shipped.
    """
    if version not in SCHEMA_VERSIONS:
        raise KeyError(version)
    return json.loads(resources.files("verifier.data").joinpath("schemas", f"{version}.json").read_text("utf-8"))


def schema_version_for(ver: Any) -> str:
    """The shipped schema version that a DCC declaring `ver` is checked against.

    - a shipped version: that one;
    - an unshipped patch (1.0.4): the newest shipped one of the same major.minor (1.0.1), as
      patch releases only fix; an unshipped minor above the newest (1.4.0): the newest of that
      major (1.3.3), as minor releases only add (the schema refuses no unknown field); a gap
      below: the newest shipped minor under it;
    - missing, not text, or not MAJOR.MINOR.PATCH (e.g. "1.0"): the newest, whose required
      `ver` and its pattern then say what is wrong, so the certificate is red `schema`;
    - another major version (0.x, 2.x): refused, red `schema_version`: semantic versioning makes
      a new major incompatible, and no published major but 1 exists.

    :raises SchemaVersionError: for a major version with no shipped schema.
    """
    if type(ver) is not str:
        return NEWEST
    if ver in _KNOWN:
        return ver
    match = _SEMVER.fullmatch(ver)
    if match is None:
        return NEWEST
    wanted = tuple(int(part) for part in match.groups())
    same_major = [v for v in SCHEMA_VERSIONS if _semver(v)[0] == wanted[0]]
    if not same_major:
        raise SchemaVersionError("/ver", f"major version {wanted[0]} is not known (known: "
                                 f"{', '.join(sorted({v.split('.')[0] for v in SCHEMA_VERSIONS}))})")
    not_above = [v for v in same_major if _semver(v)[:2] <= wanted[:2]]
    return not_above[-1] if not_above else same_major[0]


_KNOWN = frozenset(SCHEMA_VERSIONS)


class _Compiler:
    """Turns schema nodes into check functions, resolving `$ref` once."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.cache: dict[str, Check] = {}

    def ref(self, ref: str) -> Check:
        if ref not in self.cache:
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref}")
            name = ref[len("#/$defs/"):]
            node = self.root["$defs"][name]
            self.cache[ref] = self.node(node)
        return self.cache[ref]

    def node(self, node: Mapping[str, Any]) -> Check:
        check_keywords(node)
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(self.ref(node["$ref"]))
        kind = node.get("type")
        if kind == "object":
            checks.append(self.object(node))
        elif kind == "array":
            checks.append(self.array(node))
        elif kind == "string":
            checks.append(self.string(node))
        elif kind == "integer":
            checks.append(self.integer(node))
        for key in ("oneOf", "anyOf"):
            if key in node:
                checks.append(self.required_choice(key, node[key]))
        if len(checks) == 1:
            return checks[0]

        def check_all(value: Any) -> None:
            for check in checks:
                check(value)

        return check_all

    def object(self, node: Mapping[str, Any]) -> Check:
        required = tuple(node.get("required", ()))
        props = {key: self.node(sub) for key, sub in node.get("properties", {}).items()}

        def check_object(value: Any) -> None:
            if type(value) not in _MAP_TYPES and not isinstance(value, Mapping):
                raise SchemaError("", "is not an object")
            if len(value) > MAX_ITEMS:
                raise CborLimitsError(f"a map of {len(value)} entries exceeds {MAX_ITEMS}")
            for key in required:
                if key not in value:
                    raise SchemaError(f"/{key}", "is missing")
            for key, item in value.items():
                check = props.get(key)
                if check is None:  # a field the schema does not know: still within the limits
                    check_limits(key)
                    check_limits(item)
                    continue
                try:
                    check(item)
                except SchemaError as err:
                    raise err.within(key) from None

        return check_object

    def array(self, node: Mapping[str, Any]) -> Check:
        low = node.get("minItems", 0)
        high = node.get("maxItems")
        items = self.node(node["items"]) if "items" in node else None

        def check_array(value: Any) -> None:
            if type(value) not in _LIST_TYPES:
                raise SchemaError("", "is not an array")
            if len(value) > MAX_ITEMS:
                raise CborLimitsError(f"an array of {len(value)} items exceeds {MAX_ITEMS}")
            if len(value) < low or (high is not None and len(value) > high):
                raise SchemaError("", f"has {len(value)} items")
            if items is not None:
                for index, item in enumerate(value):
                    try:
                        items(item)
                    except SchemaError as err:
                        raise err.within(index) from None

        return check_array

    def string(self, node: Mapping[str, Any]) -> Check:
        longest = node.get("maxLength")
        pattern = re.compile(node["pattern"]).search if "pattern" in node else None
        form = _FORMATS.get(node.get("format", ""))

        def check_string(value: Any) -> None:
            if type(value) is not str:
                raise SchemaError("", "is not a string")
            if len(value) > MAX_STRING:
                raise CborLimitsError(f"a string of {len(value)} exceeds {MAX_STRING}")
            if longest is not None and len(value) > longest:
                raise SchemaError("", f"is longer than {longest}")
            if pattern is not None and pattern(value) is None:
                raise SchemaError("", "does not match the required pattern")
            if form is not None and not form(value):
                raise SchemaError("", f"is not a valid {node['format']}")

        return check_string

    def integer(self, node: Mapping[str, Any]) -> Check:
        low, high = node.get("minimum"), node.get("maximum")

        def check_integer(value: Any) -> None:
            if type(value) is not int and not (type(value) is float and value.is_integer()):
                raise SchemaError("", "is not an integer")
            if low is not None and value < low:
                raise SchemaError("", f"is below {low}")
            if high is not None and value > high:
                raise SchemaError("", f"is above {high}")

        return check_integer

    def required_choice(self, key: str, options: list[Mapping[str, Any]]) -> Check:
        # The DCC schema only uses oneOf/anyOf over `required` lists: check membership directly.
        groups = [tuple(option.get("required", ())) for option in options]
        if any(set(option) - {"required"} for option in options):
            raise ValueError(f"unsupported {key} in the DCC schema")
        exactly_one = key == "oneOf"

        def check_choice(value: Any) -> None:
            if type(value) not in _MAP_TYPES and not isinstance(value, Mapping):
                return
            matched = sum(all(k in value for k in group) for group in groups)
            if matched == 0 or (exactly_one and matched > 1):
                raise SchemaError("", f"must match {'exactly one' if exactly_one else 'one'} of {groups}")

        return check_choice


def compile_schema(schema: Mapping[str, Any] | str | None = None) -> Check:
    """Compile a DCC schema (a shipped version by name, default the newest) into check(value).

    Checks build no path strings on success; a failure gains its path on the way out.
    :raises ValueError: when the schema uses a keyword the compiler does not implement.
    """
    schema = load_schema(schema or NEWEST) if schema is None or isinstance(schema, str) else schema
    return _Compiler(schema).node(schema)


def compile_fast_schema(schema: Mapping[str, Any] | str | None = None) -> Callable[[Any], bool]:
    """The same schema as one generated function value -> bool (see verifier.fastschema)."""
    schema = load_schema(schema or NEWEST) if schema is None or isinstance(schema, str) else schema
    return compile_fast(schema, _FORMATS, MAP_TYPES, (MAX_STRING, MAX_ITEMS), extras_within_limits)


_compiled: dict[str, tuple[Callable[[Any], bool], Check]] = {}


def _checks(version: str) -> tuple[Callable[[Any], bool], Check]:
    checks = _compiled.get(version)
    if checks is None:  # compiled at first use: most units only ever meet one or two versions
        # Without the checks the EU's special cases lift (verifier.quirks): formats, dob/fnt/gnt patterns.
        relaxed = relax_schema(load_schema(version))
        checks = _compiled[version] = (compile_fast_schema(relaxed), compile_schema(relaxed))
    return checks


def validate_dcc(dcc: Any, value_sets: ValueSets | bool = True) -> None:
    """Check a DCC payload against the schema of the version it declares, then its coded fields.

    The generated fast check answers almost every certificate; only a failing one goes through
    the detailed validator, which names the field. `value_sets`: the ValueSets to check the
    coded fields against (a trust bundle's), True for the shipped ones, False for none (the
    conformance runner: the dgc-testdata schema step knows no value sets).

    :raises SchemaError: naming the first offending field path (never its value).
    :raises SchemaVersionError: when `ver` declares a major version no shipped schema has.
    :raises ValueSetError: when a coded field holds a code outside its value set.
    """
    version = schema_version_for(dcc.get("ver")) if type(dcc) in _MAP_TYPES else NEWEST
    fast, detailed = _checks(version)
    if not fast(dcc):
        detailed(dcc)
    # Exactly one certificate type, whatever the version (EU rule GR-EU-0000; schema 1.3.0 made it
    # a `oneOf`): the signer's key usage is checked for one type, so a second type must not ride along.
    if ("v" in dcc) + ("t" in dcc) + ("r" in dcc) != 1:
        held = [group for group in _GROUPS if group in dcc]
        raise SchemaError("", f"must hold exactly one of v, t, r (holds {', '.join(held) or 'none'})")
    if value_sets:
        (shipped() if value_sets is True else value_sets).check(dcc)
