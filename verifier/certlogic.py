"""CertLogic, the JsonLogic subset of EU DCC business rules: compile once, evaluate many times.

Follows the CertLogic specification 1.3.2 (ehn-dcc-development/eu-dcc-business-rules): the
operations `var`, `if`, `===`, `and`, `<`, `>`, `<=`, `>=`, `in`, `+`, `!`, `after`, `before`,
`not-after`, `not-before`, `plusTime`, `reduce` (with the `data` patch), `extractFromUVCI` and
`dccDateOfBirth`. An expression is checked as a whole when it is compiled (`InvalidExpression`);
type mismatches that only show on the data raise `EvaluationError`. Neither message ever quotes
the data, so an error can be logged without leaking personal data.

    expr = compile_expression({"var": "payload.v.0.dn"})
    expr.evaluate({"payload": dcc})
"""

from __future__ import annotations

import functools
import logging
import operator
import re
from collections.abc import Callable
from typing import Any

from verifier.errors import VerificationError

logger = logging.getLogger(__name__)

MAX_DEPTH = 64
"""Deepest nesting of operations accepted; real business rules stay far below it."""

MAX_REDUCE_STEPS = 10_000
"""Lambda calls one evaluation may make across all its `reduce`s (bounds nested reduces)."""

TIME_UNITS = ("year", "month", "day", "hour")

_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 86_400_000
# JavaScript's Date range, which the reference implementation inherits: +-100,000,000 days.
_MAX_INSTANT_MS = 8_640_000_000_000_000

# Evaluation state threaded through every compiled node: [remaining reduce steps].
_Budget = list[int]
_Node = Callable[[Any, _Budget], Any]


class CertLogicError(VerificationError):
    """Base of CertLogic errors: the rule could not be compiled or applied."""

    code = "certlogic"
    message_en = "The checkpoint rules could not be applied to this certificate."
    message_vi = "Không áp dụng được quy định của chốt cho chứng nhận này."

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"at {where}: {problem}")


class InvalidExpression(CertLogicError):
    """The expression does not follow the CertLogic specification."""

    code = "certlogic_invalid"


class EvaluationError(CertLogicError):
    """A valid expression met data of the wrong type (e.g. `plusTime` on a number)."""

    code = "certlogic_evaluation"


class DateTime:
    """A CertLogic date-time: a UTC instant to the millisecond, made by plusTime or dccDateOfBirth."""

    __slots__ = ("ms",)

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def isoformat(self) -> str:
        """The instant as `YYYY-MM-DDThh:mm:ss.sssZ`, as the reference implementation prints it."""
        days, rest = divmod(self.ms, _MS_PER_DAY)
        year, month, day = _civil_from_days(days)
        seconds, millis = divmod(rest, 1000)
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        return f"{year:04d}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"

    def __repr__(self) -> str:
        return f"DateTime({self.isoformat()})"


# ---------------------------------------------------------------------------------------------
# Values: truthiness, strict equality, integers


def truthiness(value: Any) -> bool | None:
    """True if truthy, False if falsy, None if CertLogic calls the value neither."""
    if value is True or value is False:
        return value
    if value is None:
        return False
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    if isinstance(value, int):
        return value != 0
    if isinstance(value, float) and value.is_integer():
        return value != 0.0
    return None  # date-times, fractional numbers


def strict_equals(left: Any, right: Any) -> bool:
    """JavaScript's `===` on JSON values: no coercion; arrays, objects, date-times by identity."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, (int, float)):
        return isinstance(right, (int, float)) and left == right
    if isinstance(left, str):
        return isinstance(right, str) and left == right
    return left is right  # None is a singleton; containers compare by reference as in JS


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _kind(value: Any) -> str:
    """A value's CertLogic type, for error messages (never the value itself: it may be personal)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, DateTime):
        return "a date-time"
    if _is_integer(value):
        return "an integer"
    if isinstance(value, float):
        return "a fractional number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------------------------
# Dates: proleptic Gregorian day numbers (valid for any year, unlike `datetime`)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a Gregorian date; `day` may overflow the month, as in JS."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """The Gregorian (year, month, day) of a day number since 1970-01-01."""
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    return year_of_era + era * 400 + (month <= 2), month, day


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


_DATE_TIME = re.compile(
    r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})"
    r"(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:(Z)|([+-])([0-9]{1,2})(?::?([0-9]{2}))?)?)?)?)?"
)
_DATE_OF_BIRTH = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")


def _last_consistent_day(year: int, month_text: str | None, day_text: str | None) -> tuple[int, int] | None:
    """(month, day) of a possibly partial date, taking the last day it allows; None if invalid."""
    if month_text is None:
        return 12, 31
    month = int(month_text)
    if not 1 <= month <= 12:
        return None
    if day_text is None:
        return month, _days_in_month(year, month)
    day = int(day_text)
    if not 1 <= day <= _days_in_month(year, month):
        return None
    return month, day


# Cached: one decision parses the same validation clock and dose date several times.
@functools.lru_cache(maxsize=512)
def parse_instant(text: str) -> int | None:
    """Milliseconds since the epoch of a CertLogic date(-time) string, or None if not one."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return None
    year_text, month_text, day_text, hh, mm, ss, fraction, _z, sign, off_h, off_m = match.groups()
    year = int(year_text)
    month_day = _last_consistent_day(year, month_text, day_text)
    if month_day is None:
        return None
    ms = _days_from_civil(year, *month_day) * _MS_PER_DAY
    if hh is not None:
        hours, minutes, seconds = int(hh), int(mm), int(ss)
        if hours > 23 or minutes > 59 or seconds > 59:
            return None
        # Only the first three decimals count: round down to the millisecond.
        millis = int((fraction + "00")[:3]) if fraction else 0
        ms += ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
        if sign is not None:
            offset_hours, offset_minutes = int(off_h), int(off_m or 0)
            if offset_hours > 23 or offset_minutes > 59:
                return None
            offset_ms = (offset_hours * 60 + offset_minutes) * 60_000
            ms -= offset_ms if sign == "+" else -offset_ms  # local time = UTC + offset
    return ms


def parse_date_time(text: str) -> DateTime:
    """A date(-time) string in one of the formats plusTime allows, as a DateTime."""
    ms = parse_instant(text)
    if ms is None:
        raise EvaluationError("plusTime", "the string is not a date-time in an allowed format")
    return DateTime(ms)


def dcc_date_of_birth(text: str) -> DateTime:
    """A DCC date of birth (YYYY, YYYY-MM or YYYY-MM-DD) as the last day it allows, at 00:00Z."""
    match = _DATE_OF_BIRTH.fullmatch(text)
    month_day = None
    if match is not None:
        month_day = _last_consistent_day(int(match.group(1)), match.group(2), match.group(3))
    if match is None or month_day is None:
        raise EvaluationError("dccDateOfBirth", "the string is not a date of birth (YYYY, YYYY-MM or YYYY-MM-DD)")
    return DateTime(_days_from_civil(int(match.group(1)), *month_day) * _MS_PER_DAY)


def plus_time(instant: DateTime, amount: int, unit: str) -> DateTime:
    """Offset a date-time like JavaScript's setUTC<unit>(getUTC<unit>() + amount): days overflow."""
    if unit == "hour":
        ms = instant.ms + amount * _MS_PER_HOUR
    elif unit == "day":
        ms = instant.ms + amount * _MS_PER_DAY  # UTC has no DST: a day is always 24 hours
    elif unit in ("month", "year"):
        days, time_of_day = divmod(instant.ms, _MS_PER_DAY)
        year, month, day = _civil_from_days(days)
        months = year * 12 + month - 1 + (amount * 12 if unit == "year" else amount)
        new_year, new_month = divmod(months, 12)
        # Day overflow as in JS: 2020-02-29 plus one year is 2021-03-01.
        ms = _days_from_civil(new_year, new_month + 1, day) * _MS_PER_DAY + time_of_day
    else:
        raise InvalidExpression("plusTime", f"time unit must be one of {', '.join(TIME_UNITS)}")
    if abs(ms) > _MAX_INSTANT_MS:
        raise EvaluationError("plusTime", "the resulting date-time is out of range")
    return DateTime(ms)


def extract_from_uvci(uvci: str | None, index: int) -> str | None:
    """Fragment `index` of a UVCI split on `/`, `#` and `:`, without a `URN:UVCI:` prefix."""
    if uvci is None:
        return None
    if uvci.startswith("URN:UVCI:"):
        uvci = uvci[len("URN:UVCI:"):]
    fragments = _UVCI_SEPARATORS.split(uvci)
    return fragments[index] if 0 <= index < len(fragments) else None


_UVCI_SEPARATORS = re.compile(r"[/#:]")


# ---------------------------------------------------------------------------------------------
# Compilation: each expression node becomes a closure `node(data, budget) -> value`


class Expression:
    """A compiled CertLogic expression; `evaluate` runs it on a data context."""

    __slots__ = ("source", "_node")

    def __init__(self, source: Any, node: _Node) -> None:
        self.source = source
        self._node = node

    def evaluate(self, data: Any) -> Any:
        """The value of the expression on `data`; raises EvaluationError on a type mismatch."""
        return self._node(data, [MAX_REDUCE_STEPS])

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(expression: Any) -> Expression:
    """Check a CertLogic expression against the specification and compile it for evaluation.

    :raises InvalidExpression: with the location (e.g. `$.and[1].plusTime[2]`) and the problem.
    """
    return Expression(expression, _compile(expression, "$", 1))


def evaluate(expression: Any, data: Any) -> Any:
    """Compile and evaluate in one go (compile once with `compile_expression` on hot paths)."""
    return compile_expression(expression).evaluate(data)


def _compile(expr: Any, where: str, depth: int) -> _Node:
    if depth > MAX_DEPTH:
        raise InvalidExpression(where, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(expr, (bool, str)) or _is_plain_int(expr):
        return _constant(expr)
    if isinstance(expr, list):
        return _compile_array(expr, where, depth)
    if isinstance(expr, dict):
        return _compile_operation(expr, where, depth)
    if expr is None:
        raise InvalidExpression(where, "null is not allowed as a literal")
    if isinstance(expr, float):
        raise InvalidExpression(where, "only integer number literals are allowed")
    raise InvalidExpression(where, f"{_kind(expr)} is not a CertLogic expression")


def _is_plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _constant(value: Any) -> _Node:
    return lambda data, budget: value


def _compile_array(items: list[Any], where: str, depth: int) -> _Node:
    nodes = [_compile(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(items)]
    if all(_is_literal(item) for item in items):
        frozen = tuple(items)
        return lambda data, budget: list(frozen)  # a fresh array per evaluation, as in JS
    return lambda data, budget: [node(data, budget) for node in nodes]


def _is_literal(expr: Any) -> bool:
    return isinstance(expr, (bool, str)) or _is_plain_int(expr)


def _compile_operation(expr: dict[Any, Any], where: str, depth: int) -> _Node:
    if len(expr) != 1:
        raise InvalidExpression(where, f"an operation object must have exactly one key, not {len(expr)}")
    ((name, operands),) = expr.items()
    where = f"{where}.{name}" if isinstance(name, str) else where
    if name == "var":
        return _compile_var(operands, where)
    compiler = _COMPILERS.get(name)
    if compiler is None:
        raise InvalidExpression(where, f"unknown operation {name!r}; CertLogic allows {', '.join(_OPERATIONS)}")
    if not isinstance(operands, list):
        raise InvalidExpression(where, f"the operands of {name!r} must be an array")
    low, high = _ARITY[name]
    if not low <= len(operands) <= high:
        expected = f"{low}" if low == high else f"{low} or more" if high > 3 else f"{low} or {high}"
        raise InvalidExpression(where, f"{name!r} takes {expected} operands, not {len(operands)}")
    return compiler(name, operands, where, depth)


def _compile_var(path: Any, where: str) -> _Node:
    if not isinstance(path, str):
        raise InvalidExpression(where, 'data access must be of the form {"var": "<path>"}')
    if path == "":
        return lambda data, budget: data
    steps = tuple((fragment, int(fragment) if fragment.isascii() and fragment.isdigit() else None)
                  for fragment in path.split("."))

    def access(data: Any, budget: _Budget) -> Any:
        for key, index in steps:
            if type(data) is dict or isinstance(data, dict):  # exact type first: the fast, usual case
                data = data.get(key)
            elif isinstance(data, (list, tuple)):
                data = data[index] if index is not None and index < len(data) else None
            else:
                return None  # null, and drilling into a scalar, give null
        return data

    return access


def _operands(operands: list[Any], where: str, depth: int) -> list[_Node]:
    return [_compile(op, f"{where}[{i}]", depth + 1) for i, op in enumerate(operands)]


def _compile_if(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    guard, then, otherwise = _operands(operands, where, depth)

    def if_(data: Any, budget: _Budget) -> Any:
        value = guard(data, budget)
        decided = truthiness(value)
        if decided is True:
            return then(data, budget)
        if decided is False:
            return otherwise(data, budget)
        raise EvaluationError(where, f"the guard is neither truthy nor falsy ({_kind(value)})")

    return if_


def _compile_and(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    nodes = _operands(operands, where, depth)

    def and_(data: Any, budget: _Budget) -> Any:
        value = None
        for node in nodes:  # lazily: stop at the first falsy operand
            value = node(data, budget)
            if value is True:
                continue
            decided = truthiness(value)
            if decided is False:
                return value
            if decided is None:
                raise EvaluationError(where, f"an operand is neither truthy nor falsy ({_kind(value)})")
        return value

    return and_


def _compile_not(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    (node,) = _operands(operands, where, depth)

    def not_(data: Any, budget: _Budget) -> bool:
        value = node(data, budget)
        decided = truthiness(value)
        if decided is None:
            raise EvaluationError(where, f"the operand is neither truthy nor falsy ({_kind(value)})")
        return not decided

    return not_


def _compile_equals(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    left, right = _operands(operands, where, depth)
    return lambda data, budget: strict_equals(left(data, budget), right(data, budget))


def _compile_in(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    item, array = _operands(operands, where, depth)
    literal = operands[1]
    if isinstance(literal, list) and all(isinstance(member, str) for member in literal):
        # A fixed list of codes: a set lookup (only a string can equal a string).
        members = frozenset(literal)

        def in_codes(data: Any, budget: _Budget) -> bool:
            value = item(data, budget)
            return isinstance(value, str) and value in members

        return in_codes

    def in_(data: Any, budget: _Budget) -> bool:
        value = item(data, budget)
        container = array(data, budget)
        if not isinstance(container, (list, tuple)):
            raise EvaluationError(where, f"the right operand must be an array, not {_kind(container)}")
        return any(strict_equals(value, member) for member in container)

    return in_


def _compile_plus(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    left, right = _operands(operands, where, depth)

    def plus(data: Any, budget: _Budget) -> Any:
        a, b = left(data, budget), right(data, budget)
        if not (_is_integer(a) and _is_integer(b)):
            raise EvaluationError(where, f"both operands must be integers, not {_kind(a)} and {_kind(b)}")
        return int(a) + int(b)

    return plus


_Comparison = Callable[[Any, Any], bool]
_INTEGER_COMPARISONS: dict[str, _Comparison] = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_DATE_COMPARISONS: dict[str, _Comparison] = {"before": operator.lt, "after": operator.gt, "not-after": operator.le, "not-before": operator.ge}


def _compile_comparison(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    nodes = _operands(operands, where, depth)
    if name in _INTEGER_COMPARISONS:
        compare = _INTEGER_COMPARISONS[name]

        def as_number(value: Any) -> Any:
            if not _is_integer(value):
                raise EvaluationError(where, f"every operand must be an integer, not {_kind(value)}")
            return value
    else:
        compare = _DATE_COMPARISONS[name]

        def as_number(value: Any) -> Any:
            if not isinstance(value, DateTime):
                raise EvaluationError(where, f"every operand must be a date-time (from plusTime or dccDateOfBirth), not {_kind(value)}")
            return value.ms

    if len(nodes) == 2 and name in _DATE_COMPARISONS:
        first, second = nodes

        def compare_dates(data: Any, budget: _Budget) -> bool:
            # The hot path of every policy: both sides are plusTime results.
            a, b = first(data, budget), second(data, budget)
            if type(a) is DateTime and type(b) is DateTime:
                return compare(a.ms, b.ms)
            return compare(as_number(a), as_number(b))

        return compare_dates
    if len(nodes) == 2:
        first, second = nodes
        return lambda data, budget: compare(as_number(first(data, budget)), as_number(second(data, budget)))

    def between(data: Any, budget: _Budget) -> bool:
        a, b, c = (as_number(node(data, budget)) for node in nodes)
        return compare(a, b) and compare(b, c)

    return between


def _compile_plus_time(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    date_expr, amount, unit = operands
    if not _is_plain_int(amount):
        raise InvalidExpression(f"{where}[1]", "the amount must be an integer literal")
    if unit not in TIME_UNITS:
        raise InvalidExpression(f"{where}[2]", f"the time unit must be one of {', '.join(TIME_UNITS)}")
    date_node = _compile(date_expr, f"{where}[0]", depth + 1)
    # Hours and days are a fixed number of milliseconds in UTC: shift without calendar work.
    shift = 0 if amount == 0 else _MS_PER_HOUR * amount if unit == "hour" else _MS_PER_DAY * amount if unit == "day" else None

    def plus_time_(data: Any, budget: _Budget) -> DateTime:
        text = date_node(data, budget)
        if not isinstance(text, str):
            raise EvaluationError(where, f"the date-time operand must be a string, not {_kind(text)}")
        ms = parse_instant(text)
        if ms is None:
            raise EvaluationError(where, "the string is not a date-time in an allowed format")
        if shift is not None and -_MAX_INSTANT_MS <= ms + shift <= _MAX_INSTANT_MS:
            return DateTime(ms + shift)
        try:
            return plus_time(DateTime(ms), amount, unit)
        except EvaluationError as error:
            raise EvaluationError(where, error.problem) from None

    return plus_time_


def _compile_reduce(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    array, step, initial = _operands(operands, where, depth)

    def reduce_(data: Any, budget: _Budget) -> Any:
        items = array(data, budget)
        if items is None:
            return initial(data, budget)
        if not isinstance(items, (list, tuple)):
            raise EvaluationError(where, f"the operand must be an array or null, not {_kind(items)}")
        accumulator = initial(data, budget)
        for current in items:
            budget[0] -= 1
            if budget[0] < 0:
                raise EvaluationError(where, f"more than {MAX_REDUCE_STEPS} reduce steps in one evaluation")
            # The patched reduce: the lambda also sees the outer data context as `data`.
            accumulator = step({"accumulator": accumulator, "current": current, "data": data}, budget)
        return accumulator

    return reduce_


def _compile_extract_from_uvci(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    uvci_expr, index = operands
    if not _is_plain_int(index):
        raise InvalidExpression(f"{where}[1]", "the index must be an integer literal")
    uvci_node = _compile(uvci_expr, f"{where}[0]", depth + 1)

    def extract(data: Any, budget: _Budget) -> str | None:
        uvci = uvci_node(data, budget)
        if uvci is not None and not isinstance(uvci, str):
            raise EvaluationError(where, f"the operand must be a string or null, not {_kind(uvci)}")
        return extract_from_uvci(uvci, index)

    return extract


def _compile_date_of_birth(name: str, operands: list[Any], where: str, depth: int) -> _Node:
    (node,) = _operands(operands, where, depth)

    def date_of_birth(data: Any, budget: _Budget) -> DateTime:
        text = node(data, budget)
        if not isinstance(text, str):
            raise EvaluationError(where, f"the operand must be a string, not {_kind(text)}")
        try:
            return dcc_date_of_birth(text)
        except EvaluationError as error:
            raise EvaluationError(where, error.problem) from None

    return date_of_birth


_MANY = 1 << 30
_ARITY: dict[str, tuple[int, int]] = {
    "if": (3, 3), "===": (2, 2), "in": (2, 2), "+": (2, 2), "and": (2, _MANY), "!": (1, 1),
    "<": (2, 3), ">": (2, 3), "<=": (2, 3), ">=": (2, 3),
    "after": (2, 3), "before": (2, 3), "not-after": (2, 3), "not-before": (2, 3),
    "plusTime": (3, 3), "reduce": (3, 3), "extractFromUVCI": (2, 2), "dccDateOfBirth": (1, 1),
}
_COMPILERS: dict[str, Callable[[str, list[Any], str, int], _Node]] = {
    "if": _compile_if, "and": _compile_and, "!": _compile_not, "===": _compile_equals,
    "in": _compile_in, "+": _compile_plus,
    **{op: _compile_comparison for op in (*_INTEGER_COMPARISONS, *_DATE_COMPARISONS)},
    "plusTime": _compile_plus_time, "reduce": _compile_reduce,
    "extractFromUVCI": _compile_extract_from_uvci, "dccDateOfBirth": _compile_date_of_birth,
}
_OPERATIONS = ("var", *_COMPILERS)
