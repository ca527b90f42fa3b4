"""Officer decisions: the policy's rules for them (the decision event itself is protocol.events).

After a yellow or red verdict a signed-in officer lets the person through (on paper proof or
another listed reason) or turns them back; without any scan, a manual check records the
outcome for someone with no QR code. The policy document's `decisions` section (signed with
the policy inside the trust bundle, so the ministry changes it without a software update) says
whether decisions are allowed, which reasons exist and after what each may be used, what the
person can do next for each red or yellow reason, and the ministry's correction channel.
Pure: no disk, network or clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifier.errors import VerificationError

OUTCOMES = ("let_through", "turned_back")
AFTER = ("yellow", "red", "manual")  # what a decision may follow: a verdict of that colour, or no scan
PAPER_PROOF = "paper_proof"
# Verdict reasons that usually mean the national record is missing or incomplete (the person
# says they are vaccinated): the dashboard reports how often a paper proof lifted them.
RECORD_GAP_REASONS = ("incomplete_series", "too_soon_after_dose", "partial_vaccination", "policy_not_met")
CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MAX_TEXT = 400
_URL = re.compile(r"^https://[A-Za-z0-9.-]+(/[A-Za-z0-9._~/%?=&#+-]*)?$")
_HOTLINE = re.compile(r"^[0-9 +.-]{3,20}$")


class DecisionError(VerificationError):
    """A decision was refused; `message_vi`/`message_en` say why on screen."""

    code = "decision_refused"
    message_en = "The decision was not recorded."
    message_vi = "Quyết định chưa được ghi nhận."

    def __init__(self, code: str, message_vi: str, message_en: str) -> None:
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en
        super().__init__(message_en)


class DecisionRulesError(VerificationError):
    """The policy's `decisions` section is malformed; names the path."""

    code = "decision_rules_invalid"
    message_en = "The checkpoint's rules for officer decisions are invalid."
    message_vi = "Quy định về quyết định của cán bộ tại chốt không hợp lệ."

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"decisions.{path}: {problem}")


@dataclass(frozen=True)
class Text:
    """A text in both languages."""

    vi: str
    en: str

    def to_json(self) -> dict[str, str]:
        return {"vi": self.vi, "en": self.en}


@dataclass(frozen=True)
class ReasonRule:
    """One reason an officer may give: its outcome and after what it may be used."""

    code: str
    outcome: str
    after: tuple[str, ...]
    label: Text


@dataclass(frozen=True)
class Correction:
    """The ministry's channel for fixing a missing or incomplete record, as it words it."""

    text: Text
    portal: str | None
    hotline: str | None

    def to_json(self) -> dict[str, Any]:
        return {"vi": self.text.vi, "en": self.text.en, "portal": self.portal, "hotline": self.hotline}


@dataclass(frozen=True)
class DecisionRules:
    """A policy's `decisions` section, checked."""

    version: int
    allowed: bool
    reasons: tuple[ReasonRule, ...]
    next_steps: Mapping[str, Text]
    record_gap_reasons: tuple[str, ...]
    correction: Correction | None

    @classmethod
    def none(cls) -> DecisionRules:
        """A policy without a `decisions` section: no decisions on this checkpoint."""
        return cls(0, False, (), {}, (), None)

    @classmethod
    def from_document(cls, doc: Any) -> DecisionRules:
        """Read the section; raises DecisionRulesError naming the first problem."""
        return _read_rules(doc)

    def reason(self, code: str) -> ReasonRule | None:
        """The rule of a reason code, or None."""
        return next((r for r in self.reasons if r.code == code), None)

    def check(self, outcome: str, reason: str, after: str) -> ReasonRule:
        """The rule allowing `outcome` for `reason` after `after` (yellow, red, manual), else DecisionError."""
        if not self.allowed:
            raise DecisionError("decisions_not_allowed", "Quy định của chốt này không cho phép cán bộ quyết định.",
                                "This checkpoint's rules do not allow officer decisions.")
        if after not in AFTER:
            raise DecisionError("nothing_to_decide", "Không có kết quả vàng hoặc đỏ nào để quyết định.",
                                "There is no yellow or red verdict to decide on.")
        rule = self.reason(reason)
        if rule is None or rule.outcome != outcome:
            raise DecisionError("reason_not_allowed", "Lý do này không có trong danh sách được phép.",
                                "This reason is not on the allowed list.")
        if after not in rule.after:
            where_vi = {"yellow": "kết quả vàng", "red": "kết quả đỏ", "manual": "kiểm tra thủ công"}[after]
            where_en = {"yellow": "a yellow verdict", "red": "a red verdict", "manual": "a manual check"}[after]
            raise DecisionError("reason_not_allowed_here", f"Lý do này không được dùng sau {where_vi}.",
                                f"This reason may not be used after {where_en}.")
        return rule

    def choices(self, after: str) -> list[dict[str, Any]]:
        """The reasons offered after a yellow, a red or for a manual check, for the screen."""
        if not self.allowed:
            return []
        return [{"code": r.code, "outcome": r.outcome, **r.label.to_json()} for r in self.reasons if after in r.after]

    def next_step(self, verdict_reason: str, result: str) -> dict[str, Any] | None:
        """What the person can do next after this verdict, with the correction channel for a record gap."""
        text = self.next_steps.get(verdict_reason) or self.next_steps.get(f"default_{result}")
        if text is None:
            return None
        step: dict[str, Any] = text.to_json()
        if verdict_reason in self.record_gap_reasons and self.correction is not None:
            step["correction"] = self.correction.to_json()
        return step


def _text(value: Any, path: str) -> Text:
    if not isinstance(value, Mapping) or set(value) != {"vi", "en"}:
        raise DecisionRulesError(path, 'must be {"vi": "...", "en": "..."}')
    for lang in ("vi", "en"):
        if not isinstance(value[lang], str) or not 0 < len(value[lang].strip()) <= _MAX_TEXT:
            raise DecisionRulesError(f"{path}.{lang}", f"must be 1-{_MAX_TEXT} characters")
    return Text(value["vi"].strip(), value["en"].strip())


def _read_rules(doc: Any) -> DecisionRules:
    if not isinstance(doc, Mapping):
        raise DecisionRulesError("$", "must be an object")
    allowed_keys = {"version", "allowed", "reasons", "next_steps", "record_gap_reasons", "correction"}
    unknown = sorted(set(doc) - allowed_keys)
    if unknown:
        raise DecisionRulesError(unknown[0], "unknown key (allowed: " + ", ".join(sorted(allowed_keys)) + ")")
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise DecisionRulesError("version", "must be a whole number of at least 1")
    allowed = doc.get("allowed")
    if not isinstance(allowed, bool):
        raise DecisionRulesError("allowed", "must be true or false")
    items = doc.get("reasons", [])
    if not isinstance(items, list) or len(items) > 30:
        raise DecisionRulesError("reasons", "must be a list of at most 30 reasons")
    reasons: list[ReasonRule] = []
    for i, item in enumerate(items):
        path = f"reasons[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"code", "outcome", "after", "label"}:
            raise DecisionRulesError(path, "must be {code, outcome, after, label}")
        code, outcome, after = item["code"], item["outcome"], item["after"]
        if not isinstance(code, str) or not CODE.match(code) or any(r.code == code for r in reasons):
            raise DecisionRulesError(f"{path}.code", "must be a new snake_case code")
        if outcome not in OUTCOMES:
            raise DecisionRulesError(f"{path}.outcome", f"must be one of {', '.join(OUTCOMES)}")
        if not isinstance(after, list) or not after or any(a not in AFTER for a in after):
            raise DecisionRulesError(f"{path}.after", f"must list some of {', '.join(AFTER)}")
        reasons.append(ReasonRule(code, outcome, tuple(after), _text(item["label"], f"{path}.label")))
    steps_doc = doc.get("next_steps", {})
    if not isinstance(steps_doc, Mapping):
        raise DecisionRulesError("next_steps", "must map verdict reasons to texts")
    steps = {}
    for key, value in steps_doc.items():
        if not isinstance(key, str) or not CODE.match(key):
            raise DecisionRulesError("next_steps", "keys must be reason codes or default_yellow/default_red")
        steps[key] = _text(value, f"next_steps.{key}")
    gaps = doc.get("record_gap_reasons", list(RECORD_GAP_REASONS))
    if not isinstance(gaps, list) or not all(isinstance(g, str) and CODE.match(g) for g in gaps):
        raise DecisionRulesError("record_gap_reasons", "must be a list of reason codes")
    correction = None
    if "correction" in doc:
        c = doc["correction"]
        if not isinstance(c, Mapping) or set(c) - {"vi", "en", "portal", "hotline"}:
            raise DecisionRulesError("correction", "must be {vi, en, portal, hotline}")
        portal, hotline = c.get("portal"), c.get("hotline")
        if portal is not None and (not isinstance(portal, str) or not _URL.match(portal)):
            raise DecisionRulesError("correction.portal", "must be an https:// address")
        if hotline is not None and (not isinstance(hotline, str) or not _HOTLINE.match(hotline)):
            raise DecisionRulesError("correction.hotline", "must be a telephone number")
        correction = Correction(_text({"vi": c.get("vi"), "en": c.get("en")}, "correction"), portal, hotline)
    return DecisionRules(version, allowed, tuple(reasons), steps, tuple(gaps), correction)
