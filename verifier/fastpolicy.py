"""A policy's rules compiled to one straight-line Python function: the fast path of Policy.decide.

The closures of `verifier.certlogic` call a Python function per node and re-read the same data
paths in every rule. Here the rules of one policy become Python source once: each data path is
read once per decision, the validation clock is an integer of milliseconds (no ISO text to build
or parse), `and` / `if` / `!` become Python operators and date comparisons compare integers.

The fast path is exact or it steps aside. It handles a common subset (`var` on `payload.*`,
`and`, `if`, `!`, `===`, `in` over literal strings, integer and date comparisons, `plusTime` by
hours or days on a path or on `external.validationClock`) and only values whose Python
truthiness equals CertLogic's (None, bool, int, str, list, tuple, dict). On anything else it
stops (`_Bail`) and says from which rule the exact evaluator must carry on; a rule that uses an
operation outside the subset always runs there. A rule the fast path finished is not re-run, so
its answer is the one CertLogic gives. Tests compare the two on mutated certificates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from verifier.certlogic import parse_instant, strict_equals


class FastDecide(Protocol):
    """fast(dcc, clock_ms) -> (True, index of the rule that holds, or len(rules) for none) or
    (False, index of the first rule the exact evaluator must run)."""

    source: str
    """The generated Python, kept for tests and debugging."""

    def __call__(self, dcc: Any, clock_ms: int, /) -> tuple[bool, int]: ...

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 86_400_000
_MAX_INSTANT_MS = 8_640_000_000_000_000
_MAX_SHIFT = _MAX_INSTANT_MS - 300_000_000_000_000  # any datetime (|ms| < 3e14) stays in range after it
_SIMPLE = frozenset({type(None), bool, int, str, list, tuple, dict})
_DATE_OPS = {"before": "<", "after": ">", "not-after": "<=", "not-before": ">="}
_INT_OPS = {"<": "<", ">": ">", "<=": "<=", ">=": ">="}
_BETWEEN: dict[str, Callable[[int, int, int], bool]] = {
    "<": lambda a, b, c: a < b < c, ">": lambda a, b, c: a > b > c,
    "<=": lambda a, b, c: a <= b <= c, ">=": lambda a, b, c: a >= b >= c,
}


class _Bail(Exception):
    """The fast path met a value it does not handle: the exact evaluator takes over."""


class _Unsupported(Exception):
    """A rule uses something outside the fast subset: it always runs in the exact evaluator."""


def clock_ms(now: datetime) -> int:
    """Milliseconds since the epoch of an aware `now`, truncated as its ISO text with milliseconds is."""
    return (now - _EPOCH) // _MS


def _step(container: Any, key: str, index: int | None) -> Any:
    """One step of a `var` path, exactly as verifier.certlogic reads it."""
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, (list, tuple)):
        return container[index] if index is not None and index < len(container) else None
    return None


def _plus_time(text: Any, shift: int) -> int:
    """`plusTime` of a date-time text by a fixed shift, in milliseconds."""
    if type(text) is not str:
        raise _Bail
    ms = parse_instant(text)
    if ms is None:
        raise _Bail
    ms += shift
    if not -_MAX_INSTANT_MS <= ms <= _MAX_INSTANT_MS:
        raise _Bail
    return ms


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise _Bail
    return value


def _in_codes(value: Any, codes: frozenset[str]) -> bool:
    return type(value) is str and value in codes


class _RuleCompiler:
    """Emits one Python expression per rule; data paths become shared locals."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {
            "_step": _step, "_plus_time": _plus_time, "_integer": _integer,
            "_in_codes": _in_codes, "_eq": strict_equals, "_Bail": _Bail, "_SIMPLE": _SIMPLE,
        }
        self.paths: dict[tuple[str, ...], str] = {(): "dcc"}
        self.leaves: list[str] = []

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.names)}"
        self.names[name] = value
        return name

    def path(self, text: Any) -> str:
        """A local holding the value at a `payload.` path (read once, before any rule)."""
        if not isinstance(text, str):
            raise _Unsupported
        fragments = text.split(".")
        if fragments[0] != "payload":
            if fragments[0] == "external" or text == "":
                raise _Unsupported  # the clock text and value sets are left to the exact evaluator
            return "None"  # the data context holds only payload and external
        steps = tuple(fragments[1:])
        for depth in range(1, len(steps) + 1):
            if steps[:depth] not in self.paths:
                self.paths[steps[:depth]] = f"p{len(self.paths)}"
        name = self.paths[steps]
        if name not in self.leaves:
            self.leaves.append(name)
        return name

    def path_lines(self, prefix: tuple[str, ...] = (), depth: int = 2) -> list[str]:
        """Statements reading every path under `prefix` once; a null skips all below it."""
        lines = []
        parent = self.paths[prefix]
        for child, name in self.paths.items():
            if len(child) != len(prefix) + 1 or child[:-1] != prefix:
                continue
            key = child[-1]
            index = int(key) if key.isascii() and key.isdigit() else None
            fast = (f"{parent}[{index}] if type({parent}) is list and len({parent}) > {index}"
                    if index is not None else f"{parent}.get({key!r}) if type({parent}) is dict")
            lines.append("    " * depth + f"{name} = {fast} else _step({parent}, {key!r}, {index!r})")
            below = [other for path, other in self.paths.items() if len(path) > len(child) and path[:len(child)] == child]
            if below:
                # Absent groups are the usual case (a vaccination has no `t`): everything below is null.
                lines.append("    " * depth + f"if {name} is None: {' = '.join(below)} = None")
                lines.append("    " * depth + "else:")
                lines += self.path_lines(child, depth + 1)
        return lines

    def value(self, expr: Any) -> str:
        """Python source for a CertLogic value whose truthiness Python judges the same way."""
        if isinstance(expr, (bool, int, str)):
            return repr(expr)
        if not isinstance(expr, dict) or len(expr) != 1:
            raise _Unsupported
        ((name, operands),) = expr.items()
        if name == "var":
            return self.path(operands)
        if not isinstance(operands, list):
            raise _Unsupported
        if name == "and" and len(operands) >= 2:
            return "(" + " and ".join(self.value(op) for op in operands) + ")"
        if name == "if" and len(operands) == 3:
            guard, then, otherwise = (self.value(op) for op in operands)
            return f"({then} if {guard} else {otherwise})"
        if name == "!" and len(operands) == 1:
            return f"(not {self.value(operands[0])})"
        if name == "===" and len(operands) == 2:
            return f"_eq({self.value(operands[0])}, {self.value(operands[1])})"
        if name == "in" and len(operands) == 2:
            codes = operands[1]
            if not isinstance(codes, list) or not all(isinstance(code, str) for code in codes):
                raise _Unsupported
            return f"_in_codes({self.value(operands[0])}, {self.constant(frozenset(codes))})"
        if name in _DATE_OPS and len(operands) in (2, 3):
            return self.comparison(_DATE_OPS[name], [self.instant(op) for op in operands])
        if name in _INT_OPS and len(operands) in (2, 3):
            return self.comparison(_INT_OPS[name], [f"_integer({self.value(op)})" for op in operands])
        raise _Unsupported

    def comparison(self, op: str, sides: list[str]) -> str:
        if len(sides) == 2:
            return f"({sides[0]} {op} {sides[1]})"
        # A call evaluates all three sides before comparing, as CertLogic does (a chain would stop early).
        return f"{self.constant(_BETWEEN[op])}({', '.join(sides)})"

    def instant(self, expr: Any) -> str:
        """Python source for a `plusTime` operand of a date comparison: milliseconds."""
        if not isinstance(expr, dict) or len(expr) != 1 or "plusTime" not in expr:
            raise _Unsupported
        operands = expr["plusTime"]
        if not isinstance(operands, list) or len(operands) != 3:
            raise _Unsupported
        date_expr, amount, unit = operands
        if isinstance(amount, bool) or not isinstance(amount, int) or unit not in ("hour", "day"):
            raise _Unsupported
        shift = amount * (_MS_PER_HOUR if unit == "hour" else _MS_PER_DAY)
        if date_expr == {"var": "external.validationClock"}:
            if abs(shift) > _MAX_SHIFT:
                raise _Unsupported
            return f"(clock + {shift})" if shift else "clock"
        if isinstance(date_expr, dict) and set(date_expr) == {"var"}:
            return f"_plus_time({self.path(date_expr['var'])}, {shift})"
        raise _Unsupported


def compile_rules(rules: Sequence[Any]) -> FastDecide:
    """Compile the `when` expressions of a policy's rules, in order, into one fast decision function."""
    compiler = _RuleCompiler()
    tests: list[str | None] = []
    for rule in rules:
        try:
            tests.append(compiler.value(rule))
        except (_Unsupported, RecursionError):
            tests.append(None)
    body = ["def fast_decide(dcc, clock):", "    rule = 0", "    try:"]
    body += compiler.path_lines()
    # Leaves of a type whose truthiness or comparison may differ from CertLogic's: exact path.
    for leaf in compiler.leaves:
        body.append(f"        if type({leaf}) not in _SIMPLE: return False, 0")
    for index, test in enumerate(tests):
        if test is None:
            body.append(f"        return False, {index}")
            break
        body.append(f"        rule = {index}")
        body.append(f"        if {test}: return True, {index}")
    else:
        body.append(f"        return True, {len(tests)}")
    body.append("    except _Bail:")
    body.append("        return False, rule")
    source = "\n".join(body) + "\n"
    namespace = dict(compiler.names)
    exec(compile(source, "<policy-rules>", "exec"), namespace)  # our own generated code
    fast: FastDecide = namespace["fast_decide"]
    fast.source = source
    return fast
