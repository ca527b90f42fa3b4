"""The DCC JSON schema and value sets, compiled once into plain Python checks.

A general JSON Schema library costs several times a signature check per certificate; the DCC
schema uses a small subset of JSON Schema (type, required, properties, items, min/maxItems,
maxLength, pattern, format, minimum, oneOf/anyOf of `required`, local `$ref`), so it is
compiled at import into nested closures. Codes with a `valueset-uri` are checked against the
shipped value sets where the value set is stable (see VALUE_SET_FIELDS).

The same walk enforces the CBOR size limits inside the DCC (verifier.cbor: strings, arrays,
maps, also in fields the schema does not know), so the DCC is walked once, not twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from importlib import resources
from typing import Any

from verifier.cbor import MAP_TYPES, MAX_ITEMS, MAX_STRING, check_limits, extras_within_limits
from verifier.errors import CborLimitsError, SchemaError, ValueSetError
from verifier.fastschema import compile_fast

Check = Callable[[Any], None]

# Exact-type tests first: isinstance() against an ABC costs more than the rest of a check.
_MAP_TYPES = MAP_TYPES
_LIST_TYPES = (list, tuple)

# Value sets enforced by default. Test manufacturers (`test-manf`) change monthly and countries
# include historical codes, so those are left to the schema's shape checks.
VALUE_SET_FIELDS = frozenset({"disease-agent-targeted", "test-result", "test-type"})

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


def _load_json(name: str) -> Any:
    return json.loads(resources.files("verifier.data").joinpath(name).read_text("utf-8"))


def load_value_sets() -> dict[str, frozenset[str]]:
    """Value set codes keyed by the schema's definition name (e.g. `test-type`)."""
    sets = {}
    for path in resources.files("verifier.data").joinpath("valuesets").iterdir():
        if path.name.endswith(".json"):
            sets[path.name[:-5]] = frozenset(json.loads(path.read_text("utf-8"))["valueSetValues"])
    return sets


class _Compiler:
    """Turns schema nodes into check functions, resolving `$ref` once."""

    def __init__(self, root: Mapping[str, Any], value_sets: Mapping[str, frozenset[str]],
                 enforce: frozenset[str]) -> None:
        self.root = root
        self.value_sets = value_sets
        self.enforce = enforce
        self.cache: dict[str, Check] = {}

    def ref(self, ref: str) -> Check:
        if ref not in self.cache:
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref}")
            name = ref[len("#/$defs/"):]
            node = self.root["$defs"][name]
            self.cache[ref] = self.node(node, name)
        return self.cache[ref]

    def node(self, node: Mapping[str, Any], name: str = "") -> Check:
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(self.ref(node["$ref"]))
        kind = node.get("type")
        if kind == "object":
            checks.append(self.object(node))
        elif kind == "array":
            checks.append(self.array(node))
        elif kind == "string":
            checks.append(self.string(node, name))
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
        props = {key: self.node(sub, key) for key, sub in node.get("properties", {}).items()}

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

    def string(self, node: Mapping[str, Any], name: str) -> Check:
        longest = node.get("maxLength")
        pattern = re.compile(node["pattern"]).search if "pattern" in node else None
        form = _FORMATS.get(node.get("format", ""))
        codes = None
        if "valueset-uri" in node and name in self.enforce:
            codes = self.value_sets.get(node["valueset-uri"].rsplit("/", 1)[-1][:-5])

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
            if codes is not None and value not in codes:
                raise ValueSetError("", "is not a known code")

        return check_string

    def integer(self, node: Mapping[str, Any]) -> Check:
        low = node.get("minimum")

        def check_integer(value: Any) -> None:
            if type(value) is not int and not (type(value) is float and value.is_integer()):
                raise SchemaError("", "is not an integer")
            if low is not None and value < low:
                raise SchemaError("", f"is below {low}")

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


def compile_schema(schema: Mapping[str, Any] | None = None,
                   value_sets: Mapping[str, frozenset[str]] | None = None,
                   enforce: frozenset[str] = VALUE_SET_FIELDS) -> Check:
    """Compile a DCC schema (default: the shipped one) into a check(value) function.

    Checks build no path strings on success; a failure gains its path on the way out.
    """
    schema = schema if schema is not None else _load_json("DCC.combined-schema.json")
    value_sets = value_sets if value_sets is not None else load_value_sets()
    return _Compiler(schema, value_sets, enforce).node(schema)


def compile_fast_schema(enforce: frozenset[str] = VALUE_SET_FIELDS) -> Callable[[Any], bool]:
    """The shipped schema as one generated function value -> bool (see verifier.fastschema)."""
    return compile_fast(_load_json("DCC.combined-schema.json"), load_value_sets(), enforce,
                        _FORMATS, MAP_TYPES, (MAX_STRING, MAX_ITEMS), extras_within_limits)


_compiled: dict[bool, tuple[Callable[[Any], bool], Check]] = {}


def validate_dcc(dcc: Any, value_sets: bool = True) -> None:
    """Check a DCC payload against the DCC schema and, unless turned off, the stable value sets.

    The generated fast check answers almost every certificate; only a failing one goes through
    the detailed validator, which names the field.

    :raises SchemaError: naming the first offending field path (never its value).
    :raises ValueSetError: when a coded field holds an unknown code.
    """
    checks = _compiled.get(value_sets)
    if checks is None:
        enforce = VALUE_SET_FIELDS if value_sets else frozenset()
        checks = _compiled[value_sets] = (compile_fast_schema(enforce), compile_schema(enforce=enforce))
    if not checks[0](dcc):
        checks[1](dcc)
