"""The DCC schema compiled to Python source: one straight-line function that answers valid or not.

This is the fast path of `verifier.schema`: it builds no paths and raises nothing, it only
returns True when the value passes every check the detailed validator makes (same types,
lengths, patterns, formats, bounds, item counts and required keys). When it
returns False the detailed validator runs to name the failing field. It must never return
True where the detailed validator would fail; tests compare the two on mutated payloads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol


class FastCheck(Protocol):
    """check(value) -> True when the value follows the schema's structure."""

    source: str
    """The generated Python, kept for tests and debugging."""

    def __call__(self, value: Any, /) -> bool: ...


class _SourceCompiler:
    """Emits Python source for a schema; each value lives in a fresh local variable."""

    def __init__(self, root: Mapping[str, Any], formats: Mapping[str, Callable[[str], bool]],
                 map_types: tuple[type, ...]) -> None:
        self.root = root
        self.names: dict[str, Any] = {"_MAPS": map_types, "_LISTS": (list, tuple), "_MISSING": object()}
        self.formats = formats
        self.lines: list[str] = []
        self.counter = 0
        self.max_string = 0
        self.max_items = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def constant(self, value: Any, stem: str) -> str:
        name = self.fresh(f"_{stem}")
        self.names[name] = value
        return name

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def node(self, node: Mapping[str, Any], var: str, depth: int, nesting: int = 0) -> None:
        if nesting > 20:
            raise ValueError("schema nests too deeply (recursive $ref?)")
        check_keywords(node)
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref}")
            target = ref[len("#/$defs/"):]
            self.node(self.root["$defs"][target], var, depth, nesting + 1)
        kind = node.get("type")
        if kind == "object":
            self.object(node, var, depth, nesting)
        elif kind == "array":
            self.array(node, var, depth, nesting)
        elif kind == "string":
            self.string(node, var, depth)
        elif kind == "integer":
            self.emit(depth, f"if type({var}) is not int and not (type({var}) is float and {var}.is_integer()): return False")
            if "minimum" in node:
                self.emit(depth, f"if {var} < {node['minimum']!r}: return False")
            if "maximum" in node:
                self.emit(depth, f"if {var} > {node['maximum']!r}: return False")
        for key in ("oneOf", "anyOf"):
            if key in node:
                groups = [tuple(option.get("required", ())) for option in node[key]]
                tests = " + ".join(
                    "(" + " and ".join(f"{k!r} in {var}" for k in group) + ")" for group in groups)
                bad = "!= 1" if key == "oneOf" else "== 0"
                self.emit(depth, f"if type({var}) in _MAPS and ({tests}) {bad}: return False")

    def object(self, node: Mapping[str, Any], var: str, depth: int, nesting: int) -> None:
        self.emit(depth, f"if type({var}) not in _MAPS: return False")
        self.emit(depth, f"if len({var}) > {self.max_items}: return False")
        known = self.constant(frozenset(node.get("properties", {})), "known")
        # Fields the schema does not name must still respect the size limits.
        self.emit(depth, f"if not {var}.keys() <= {known} and not _extras_ok({var}, {known}): return False")
        required = tuple(node.get("required", ()))
        properties = node.get("properties", {})
        for key in required:
            if key not in properties:
                self.emit(depth, f"if {key!r} not in {var}: return False")
        for key, sub in properties.items():
            child = self.fresh("v")
            self.emit(depth, f"{child} = {var}.get({key!r}, _MISSING)")
            if key in required:  # present for sure: its checks need no guard
                before = len(self.lines)
                self.node(sub, child, depth, nesting + 1)
                # A leading type check already refuses the _MISSING marker: no separate test.
                if len(self.lines) == before or not self.lines[before].lstrip().startswith(f"if type({child}) "):
                    self.lines.insert(before, "    " * depth + f"if {child} is _MISSING: return False")
                continue
            self.emit(depth, f"if {child} is not _MISSING:")
            before = len(self.lines)
            self.node(sub, child, depth + 1, nesting + 1)
            if len(self.lines) == before:
                self.emit(depth + 1, "pass")

    def array(self, node: Mapping[str, Any], var: str, depth: int, nesting: int) -> None:
        self.emit(depth, f"if type({var}) not in _LISTS: return False")
        low, high = node.get("minItems", 0), node.get("maxItems")
        high = self.max_items if high is None else min(high, self.max_items)  # one test for both limits
        if low:
            self.emit(depth, f"if not {low} <= len({var}) <= {high}: return False")
        else:
            self.emit(depth, f"if len({var}) > {high}: return False")
        if "items" in node:
            item = self.fresh("i")
            self.emit(depth, f"for {item} in {var}:")
            before = len(self.lines)
            self.node(node["items"], item, depth + 1, nesting + 1)
            if len(self.lines) == before:
                self.emit(depth + 1, "pass")

    def string(self, node: Mapping[str, Any], var: str, depth: int) -> None:
        self.emit(depth, f"if type({var}) is not str: return False")
        longest = min(node.get("maxLength", self.max_string), self.max_string)
        self.emit(depth, f"if len({var}) > {longest}: return False")
        if "pattern" in node:
            search = self.constant(re.compile(node["pattern"]).search, "pattern")
            self.emit(depth, f"if {search}({var}) is None: return False")
        form = self.formats.get(node.get("format", ""))
        if form is not None:
            self.emit(depth, f"if not {self.constant(form, 'format')}({var}): return False")


# What a DCC schema node may hold: the keywords both compilers implement, and annotations.
KEYWORDS = frozenset({"type", "properties", "required", "items", "minItems", "maxItems", "maxLength",
                      "pattern", "format", "minimum", "maximum", "oneOf", "anyOf", "$ref"})
ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "examples",
                         "valueset-uri"})


def check_keywords(node: Mapping[str, Any]) -> None:
    """Refuse a schema using a keyword neither compiler implements (it would be silently ignored).

    :raises ValueError: naming the keywords.
    """
    unknown = set(node) - KEYWORDS - ANNOTATIONS
    if unknown:
        raise ValueError(f"unsupported schema keywords {sorted(unknown)}")


def compile_fast(schema: Mapping[str, Any], formats: Mapping[str, Callable[[str], bool]],
                 map_types: tuple[type, ...], limits: tuple[int, int],
                 extras_ok: Callable[[Any, frozenset[str]], bool]) -> FastCheck:
    """Compile `schema` into a function value -> bool (True only when every check passes).

    `limits` is (longest string, most items); `extras_ok(mapping, known_keys)` checks the
    fields the schema does not name.
    """
    compiler = _SourceCompiler(schema, formats, map_types)
    compiler.max_string, compiler.max_items = limits
    compiler.names["_extras_ok"] = extras_ok
    compiler.node(schema, "value", 1)
    source = "def fast_check(value):\n" + "\n".join(compiler.lines) + "\n    return True\n"
    namespace = dict(compiler.names)
    exec(compile(source, "<dcc-schema>", "exec"), namespace)  # our own generated code
    check: FastCheck = namespace["fast_check"]
    check.source = source
    return check
