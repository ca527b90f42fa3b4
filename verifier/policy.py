"""Checkpoint policies: JSON documents of CertLogic rules that turn a valid DCC into a colour.

A policy document (format `chot-policy/1`, see docs/architecture.md) holds an ordered list of
passing `outcomes` (green or yellow; the first whose `when` holds wins), an ordered list of
`refusals` (red outcomes that only explain a red: they are tried after no outcome matched, so
they can never turn a pass into a refusal), a `default` red outcome, and the operational
options `max_trust_age_hours` and `on_untrusted_clock`. Every `when` is a CertLogic expression
over the EU business-rule data context:
`{"payload": <DCC>, "external": {"validationClock": <ISO 8601 now>, "valueSets": {...}}}`.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any, NamedTuple, cast

from verifier.certlogic import EvaluationError, Expression, InvalidExpression, compile_expression, truthiness
from verifier.decisions import DecisionRules, DecisionRulesError
from verifier.errors import PolicyError, VerificationError
from verifier.fastpolicy import FastDecide, clock_ms, compile_rules

logger = logging.getLogger(__name__)

POLICY_FORMAT = "chot-policy/1"
DEFAULT_POLICY = "vn-2021"
PASS_RESULTS = ("green", "yellow")
CLOCK_CHOICES = ("warn", "refuse")

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MAX_TEXT = 300
_MAX_DESCRIPTION = 2000
_TOP_KEYS = {"format", "name", "title", "description", "max_trust_age_hours", "on_untrusted_clock",
             "value_sets", "outcomes", "refusals", "default", "decisions"}


class PolicyDocumentError(VerificationError):
    """A policy document does not follow the `chot-policy/1` format; lists every problem found."""

    code = "policy_invalid"
    message_en = "The checkpoint rules are invalid."
    message_vi = "Quy định của chốt kiểm soát không hợp lệ."

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {problem}" for path, problem in problems))


class UnknownPolicy(VerificationError):
    """No built-in policy has this name."""

    code = "policy_unknown"
    message_en = "The checkpoint is set to rules that do not exist."
    message_vi = "Chốt kiểm soát được đặt theo quy định không tồn tại."

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"no built-in policy {name!r}; known: {', '.join(known)}")


class Decision(NamedTuple):
    """What a policy says about one certificate."""

    result: str
    reason: str
    message_en: str
    message_vi: str


@dataclass(frozen=True)
class Outcome:
    """One possible decision and the CertLogic condition (`when`) under which it applies."""

    result: str
    reason: str
    message_en: str
    message_vi: str
    when: Any = field(default=None, hash=False)
    """The CertLogic expression as written (None for the default outcome)."""
    expression: Expression | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def decision(self) -> Decision:
        """The decision this outcome gives (an immutable tuple, made once)."""
        return Decision(self.result, self.reason, self.message_en, self.message_vi)

    def to_document(self) -> dict[str, Any]:
        """The outcome as it appears in a policy document."""
        doc: dict[str, Any] = {"result": self.result, "reason": self.reason,
                               "message": {"en": self.message_en, "vi": self.message_vi}}
        if self.expression is not None:
            doc["when"] = copy.deepcopy(self.when)
        return doc


@dataclass(frozen=True)
class Policy:
    """A checkpoint policy: decides green, yellow or red for a certificate that verified."""

    name: str
    title_en: str
    title_vi: str
    outcomes: tuple[Outcome, ...]
    default: Outcome
    refusals: tuple[Outcome, ...] = ()
    max_trust_age_hours: float = 72
    """How old the trust bundle may be before the unit warns that it is stale."""
    on_untrusted_clock: str = "warn"
    """"warn": keep judging and say the clock is suspect; "refuse": judge nothing until it is fixed."""
    description_en: str = ""
    description_vi: str = ""
    value_sets: dict[str, Any] = field(default_factory=dict, hash=False)
    """Given to the rules as `external.valueSets`."""
    decisions: DecisionRules = field(default_factory=DecisionRules.none, hash=False)
    """What officers may decide after a yellow or red verdict (verifier.decisions)."""
    decisions_document: dict[str, Any] | None = field(default=None, hash=False, compare=False, repr=False)

    @property
    def max_trust_age(self) -> timedelta:
        """`max_trust_age_hours` as a timedelta (what verify() reads)."""
        return timedelta(hours=self.max_trust_age_hours)

    def decide(self, dcc: Mapping[str, Any], now: datetime) -> Decision:
        """Green, yellow or red for a verified DCC payload at time `now` (timezone-aware).

        :raises PolicyError: when a rule cannot be evaluated on this certificate (a policy bug or
            a payload the DCC schema should have refused); the message never holds personal data.
        """
        if now.tzinfo is None:
            raise PolicyError("the validation time must be timezone-aware")
        rules = self._rules
        decided, index = self._fast(dcc, clock_ms(now))
        if decided:
            return rules[index].decision if index < len(rules) else self.default.decision
        # The fast path stepped aside at rule `index` (every rule before it is false): go on exactly.
        clock = now.astimezone(timezone.utc).isoformat(timespec="milliseconds")
        data = {"payload": dcc, "external": {"validationClock": clock, "valueSets": self.value_sets}}
        for rule in rules[index:]:
            if self._holds(rule, data):
                return rule.decision
        return self.default.decision

    @functools.cached_property
    def _rules(self) -> tuple[Outcome, ...]:
        """Outcomes then refusals: the order in which `decide` tries them."""
        return self.outcomes + self.refusals

    @functools.cached_property
    def _fast(self) -> FastDecide:
        """The rules compiled once to straight-line Python (verifier.fastpolicy)."""
        return compile_rules([rule.when for rule in self._rules])

    def _holds(self, outcome: Outcome, data: dict[str, Any]) -> bool:
        assert outcome.expression is not None
        try:
            value = outcome.expression.evaluate(data)
        except EvaluationError as err:
            logger.warning("policy %s, outcome %s: %s", self.name, outcome.reason, err)
            raise PolicyError(f"policy {self.name}, outcome {outcome.reason}: {err}") from err
        holds = truthiness(value)
        if holds is None:
            raise PolicyError(f"policy {self.name}, outcome {outcome.reason}: rule gave a value that is neither true nor false")
        return holds

    @classmethod
    def from_document(cls, doc: object) -> Policy:
        """Check a `chot-policy/1` document and compile its rules.

        :raises PolicyDocumentError: listing each problem with its location, e.g.
            `outcomes[1].when.and[2]: unknown operation 'or'`.
        """
        return _DocumentReader(doc).read()

    def to_document(self) -> dict[str, Any]:
        """The policy as a `chot-policy/1` document (`from_document` gives an equal policy back)."""
        doc: dict[str, Any] = {
            "format": POLICY_FORMAT,
            "name": self.name,
            "title": {"en": self.title_en, "vi": self.title_vi},
        }
        if self.description_en or self.description_vi:
            doc["description"] = {"en": self.description_en, "vi": self.description_vi}
        doc.update({
            "max_trust_age_hours": self.max_trust_age_hours,
            "on_untrusted_clock": self.on_untrusted_clock,
            "outcomes": [outcome.to_document() for outcome in self.outcomes],
            "refusals": [refusal.to_document() for refusal in self.refusals],
            "default": self.default.to_document(),
        })
        if self.value_sets:
            doc["value_sets"] = copy.deepcopy(self.value_sets)
        if self.decisions_document is not None:
            doc["decisions"] = copy.deepcopy(self.decisions_document)
        return doc


class _DocumentReader:
    """Reads one policy document, collecting every problem rather than stopping at the first."""

    def __init__(self, doc: object) -> None:
        self.doc = doc
        self.problems: list[tuple[str, str]] = []

    def read(self) -> Policy:
        doc = self.doc
        if not isinstance(doc, dict):
            raise PolicyDocumentError([("$", "a policy document must be a JSON object")])
        for key in sorted(set(doc) - _TOP_KEYS, key=str):
            self.problem(str(key), "unknown key (allowed: " + ", ".join(sorted(_TOP_KEYS)) + ")")
        if doc.get("format", POLICY_FORMAT) != POLICY_FORMAT:
            self.problem("format", f"must be {POLICY_FORMAT!r}")
        name = self.text(doc, "name", "name", pattern=_NAME, hint="lower-case letters, digits and '-'")
        title_en, title_vi = self.message(doc, "title", "title")
        description_en, description_vi = ("", "")
        if "description" in doc:
            description_en, description_vi = self.message(doc, "description", "description", _MAX_DESCRIPTION)
        max_age = doc.get("max_trust_age_hours")
        if isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not 0 < max_age <= 24 * 366:
            self.problem("max_trust_age_hours", "must be a number of hours above 0 and at most a year")
        clock = doc.get("on_untrusted_clock")
        if clock not in CLOCK_CHOICES:
            self.problem("on_untrusted_clock", f"must be one of {', '.join(CLOCK_CHOICES)}")
        value_sets = doc.get("value_sets", {})
        if not isinstance(value_sets, dict):
            self.problem("value_sets", "must be an object of value set name to value set")
        else:
            try:
                value_sets = copy.deepcopy(value_sets)
            except RecursionError:
                self.problem("value_sets", "nested too deeply")
        outcomes = self.outcome_list(doc, "outcomes", PASS_RESULTS, required=True)
        refusals = self.outcome_list(doc, "refusals", ("red",), required=False)
        default = self.outcome(doc.get("default"), "default", ("red",), with_rule=False)
        decisions, decisions_document = DecisionRules.none(), None
        if "decisions" in doc:
            try:
                decisions = DecisionRules.from_document(doc["decisions"])
                decisions_document = copy.deepcopy(doc["decisions"])
            except DecisionRulesError as err:
                self.problem(f"decisions.{err.path}", err.problem)
        if self.problems:
            raise PolicyDocumentError(self.problems)
        assert default is not None
        return Policy(
            name=name, title_en=title_en, title_vi=title_vi, outcomes=tuple(outcomes), default=default,
            refusals=tuple(refusals), max_trust_age_hours=cast(float, max_age), on_untrusted_clock=cast(str, clock),  # checked above
            description_en=description_en, description_vi=description_vi,
            value_sets=value_sets, decisions=decisions, decisions_document=decisions_document,
        )

    def problem(self, path: str, text: str) -> None:
        self.problems.append((path, text))

    def text(self, parent: object, key: str, path: str, *, pattern: re.Pattern[str] | None = None,
             hint: str = "", max_length: int = _MAX_TEXT) -> str:
        value = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(value, str) or not value.strip():
            self.problem(path, "must be a non-empty string")
            return ""
        if len(value) > max_length:
            self.problem(path, f"must be at most {max_length} characters")
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(path, f"must be {hint}")
        return value

    def message(self, parent: dict[str, Any], key: str, path: str, max_length: int = _MAX_TEXT) -> tuple[str, str]:
        value = parent.get(key)
        if not isinstance(value, dict) or set(value) != {"en", "vi"}:
            self.problem(path, 'must be {"en": "...", "vi": "..."}')
            return "", ""
        return (self.text(value, "en", f"{path}.en", max_length=max_length),
                self.text(value, "vi", f"{path}.vi", max_length=max_length))

    def outcome_list(self, doc: dict[str, Any], key: str, results: tuple[str, ...], *,
                     required: bool) -> list[Outcome]:
        items = doc.get(key, None if required else [])
        if not isinstance(items, list) or (required and not items):
            self.problem(key, "must be a non-empty array of outcomes" if required else "must be an array")
            return []
        found = [self.outcome(item, f"{key}[{i}]", results, with_rule=True) for i, item in enumerate(items)]
        return [outcome for outcome in found if outcome is not None]

    def outcome(self, item: object, path: str, results: tuple[str, ...], *, with_rule: bool) -> Outcome | None:
        if not isinstance(item, dict):
            self.problem(path, "must be an object")
            return None
        allowed = {"result", "reason", "message", "when"} if with_rule else {"result", "reason", "message"}
        for key in sorted(set(item) - allowed, key=str):
            self.problem(f"{path}.{key}", "unknown key (allowed: " + ", ".join(sorted(allowed)) + ")")
        if item.get("result") not in results:
            self.problem(f"{path}.result", f"must be {' or '.join(results)}")
        reason = self.text(item, "reason", f"{path}.reason", pattern=_REASON, hint="a snake_case code")
        message_en, message_vi = self.message(item, "message", f"{path}.message")
        expression = None
        if with_rule:
            if "when" not in item:
                self.problem(f"{path}.when", "missing: the CertLogic rule under which this outcome applies")
            else:
                try:
                    expression = compile_expression(item["when"])
                except InvalidExpression as err:
                    self.problem(f"{path}.when{err.where[1:]}", err.problem)
        # Copy only a rule that compiled: it is then at most MAX_DEPTH deep, safe to copy.
        when = copy.deepcopy(item["when"]) if expression is not None else None
        return Outcome(str(item.get("result")), reason, message_en, message_vi, when, expression)


@functools.cache
def _load_builtins() -> tuple[Policy, ...]:
    folder = resources.files("verifier.policies")
    documents = [json.loads(entry.read_text("utf-8")) for entry in folder.iterdir() if entry.name.endswith(".json")]
    return tuple(sorted((Policy.from_document(doc) for doc in documents), key=lambda p: p.name))


def builtin_policies() -> dict[str, Policy]:
    """Every policy shipped with chot, by name."""
    return {policy.name: policy for policy in _load_builtins()}


def builtin_policy(name: str = DEFAULT_POLICY) -> Policy:
    """The shipped policy called `name` (default `vn-2021`).

    :raises UnknownPolicy: naming the policies that exist.
    """
    policies = builtin_policies()
    if name not in policies:
        raise UnknownPolicy(name, sorted(policies))
    return policies[name]
