"""The events a unit reports: verdicts and officer decisions, with one set of field rules.

A verdict event is `{seq, ts, result, reason, policy, trust_version}`. A decision event, one per
officer decision, holds codes only: `{seq, ts, kind: "decision", outcome, reason, officer,
follows_seq?, follows_result?, follows_reason?, policy, trust_version}`; `follows_*` name the
verdict it follows by the unit's own seq, absent for a manual check. The unit's outbox checks
the fields before it stores an event (`validate_verdict`, `validate_decision`) and encodes them
(`encode_event`); the central's ingest parses the payload with the same rules (`parse_event`).
Nothing else may leave the unit: no names, dates of birth, certificate ids or payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from protocol.fields import FOLLOWED, NAME, OFFICER_ID, OUTCOMES, REASON, RESULTS, is_seq
from protocol.message import Rejected, json_object, parse_time

KIND = "decision"
VERDICT_FIELDS = ("result", "reason", "policy", "trust_version")
DECISION_FIELDS = ("kind", "outcome", "reason", "officer", "follows_seq", "follows_result", "follows_reason",
                   "policy", "trust_version")
_VERDICT_KEYS = frozenset({"seq", "ts", *VERDICT_FIELDS})
_DECISION_KEYS = frozenset({"seq", "ts", *DECISION_FIELDS})


class EventFieldError(ValueError):
    """An event field is missing or malformed; names the field, never its value."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"event field {field!r}: {problem}")


def _check_policy_and_trust(fields: Mapping[str, Any]) -> None:
    policy = fields.get("policy")
    if policy is not None and (not isinstance(policy, str) or not NAME.match(policy)):
        raise EventFieldError("policy", "must be a policy name of at most 64 characters, or null")
    tv = fields.get("trust_version")
    if tv is not None and (isinstance(tv, bool) or not isinstance(tv, int) or tv < 0):
        raise EventFieldError("trust_version", "must be a whole number or null")


def validate_verdict(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a verdict event's fields (seq and ts aside); returns exactly VERDICT_FIELDS."""
    unknown = sorted(set(fields) - set(VERDICT_FIELDS))
    if unknown:
        raise EventFieldError(unknown[0], "not part of the event schema (refused for privacy)")
    if fields.get("result") not in RESULTS:
        raise EventFieldError("result", f"must be one of {', '.join(RESULTS)}")
    reason = fields.get("reason")
    if not isinstance(reason, str) or not REASON.match(reason):
        raise EventFieldError("reason", "must be a snake_case code of at most 64 characters")
    _check_policy_and_trust(fields)
    return {name: fields.get(name) for name in VERDICT_FIELDS}


def validate_decision(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a decision event's fields (seq and ts aside); returns them with absent ones as None."""
    unknown = sorted(set(fields) - set(DECISION_FIELDS))
    if unknown:
        raise EventFieldError(unknown[0], "not part of the decision event (refused for privacy)")
    if fields.get("kind") != KIND:
        raise EventFieldError("kind", f"must be {KIND!r}")
    if fields.get("outcome") not in OUTCOMES:
        raise EventFieldError("outcome", f"must be one of {', '.join(OUTCOMES)}")
    reason = fields.get("reason")
    if not isinstance(reason, str) or not REASON.match(reason):
        raise EventFieldError("reason", "must be a snake_case code")
    officer = fields.get("officer")
    if not isinstance(officer, str) or not OFFICER_ID.match(officer):
        raise EventFieldError("officer", "must be an officer id")
    follows = fields.get("follows_seq")
    result, followed = fields.get("follows_result"), fields.get("follows_reason")
    if follows is None:
        if result is not None or followed is not None:
            raise EventFieldError("follows_result", "a manual check follows no verdict")
    else:
        if not is_seq(follows):
            raise EventFieldError("follows_seq", "must be a positive whole number")
        if result not in FOLLOWED:
            raise EventFieldError("follows_result", "must be yellow or red")
        if not isinstance(followed, str) or not REASON.match(followed):
            raise EventFieldError("follows_reason", "must be a reason code")
    _check_policy_and_trust(fields)
    return {name: fields.get(name) for name in DECISION_FIELDS}


def counted_as(fields: Mapping[str, Any]) -> str:
    """How a decision is counted beside green/yellow/red: "decision" after a scan, "manual" without."""
    return "manual" if fields.get("follows_seq") is None else "decision"


def encode_event(seq: int, ts: str, fields: Mapping[str, Any]) -> bytes:
    """The JSON bytes of an event (a decision when `fields["kind"]` is set) for the event topic."""
    if fields.get("kind") is None:
        body: dict[str, Any] = {"seq": seq, "ts": ts, **{name: fields.get(name) for name in VERDICT_FIELDS}}
    else:
        body = {"seq": seq, "ts": ts, "kind": fields["kind"], "outcome": fields.get("outcome"),
                "reason": fields.get("reason"), "officer": fields.get("officer"), "policy": fields.get("policy"),
                "trust_version": fields.get("trust_version")}
        if fields.get("follows_seq") is not None:
            body.update(follows_seq=fields["follows_seq"], follows_result=fields.get("follows_result"),
                        follows_reason=fields.get("follows_reason"))
    return json.dumps(body, separators=(",", ":")).encode()


def parse_event(payload: bytes) -> dict[str, Any]:
    """A verdict's or a decision's payload checked against the contract, as record fields:
    `seq`, `ts` (aware UTC), `result` (a colour, or how a decision counts), `reason`, `policy`,
    `trust_version`, and for decisions `outcome`, `officer`, `follows_*` (None for a verdict).
    Raises Rejected (`unknown_field`, `missing_field`, `bad_field`, `bad_ts`, `bad_json`, `too_large`)."""
    data = json_object(payload, _VERDICT_KEYS | _DECISION_KEYS)
    decision = "kind" in data
    if not decision:
        unknown = set(data) - _VERDICT_KEYS
        if unknown:
            raise Rejected("unknown_field", f"unknown fields {sorted(unknown)[:5]}")
    required = {"seq", "ts", "outcome", "reason", "officer", "policy"} if decision else _VERDICT_KEYS - {"trust_version"}
    missing = required - set(data)
    if missing:
        raise Rejected("missing_field", f"missing fields {sorted(missing)}")
    rest = {k: v for k, v in data.items() if k not in ("seq", "ts")}
    ts = None if decision else parse_time(data["ts"])  # a verdict's time is read first, as it always was
    try:
        fields = validate_decision(rest) if decision else validate_verdict(rest)
    except EventFieldError as e:
        raise Rejected("bad_field", str(e)) from None
    record: dict[str, Any] = {"seq": data["seq"], "ts": ts or parse_time(data["ts"]),
                              "result": counted_as(fields) if decision else fields["result"],
                              "reason": fields["reason"], "policy": fields["policy"],
                              "trust_version": fields["trust_version"], "outcome": None, "officer": None,
                              "follows_seq": None, "follows_result": None, "follows_reason": None}
    if decision:
        record.update({k: fields[k] for k in ("outcome", "officer", "follows_seq", "follows_result", "follows_reason")})
    return record
