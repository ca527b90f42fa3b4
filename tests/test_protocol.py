"""The unit-central contract (protocol/): what a unit encodes the central parses, and both sides
refuse the same fields, because both run the same rules."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from protocol import topics
from protocol.ack import encode_acks, parse_ack
from protocol.events import EventFieldError, encode_event, parse_event, validate_decision, validate_verdict
from protocol.message import Rejected
from protocol.status import OFFLINE, parse_status
from scanner.config import MqttConfig

VERDICT = {"result": "yellow", "reason": "partial_vaccination", "policy": "vn-2021", "trust_version": 7}
DECISION = {"kind": "decision", "outcome": "let_through", "reason": "paper_proof", "officer": "CA-001",
            "follows_seq": 41, "follows_result": "red", "follows_reason": "incomplete_series",
            "policy": "vn-2021", "trust_version": 7}
TS = "2026-12-08T03:04:05.000000Z"


def test_a_verdict_encoded_by_a_unit_is_read_back_by_the_central() -> None:
    record = parse_event(encode_event(42, TS, validate_verdict(VERDICT)))
    assert record["seq"] == 42 and record["ts"] == datetime(2026, 12, 8, 3, 4, 5, tzinfo=timezone.utc)
    assert {k: record[k] for k in VERDICT} == VERDICT
    assert record["outcome"] is None and record["officer"] is None and record["follows_seq"] is None


@pytest.mark.parametrize("follows", [True, False])
def test_a_decision_and_a_manual_check_are_read_back_and_counted_apart(follows: bool) -> None:
    fields = dict(DECISION) if follows else {k: v for k, v in DECISION.items() if not k.startswith("follows_")}
    payload = encode_event(43, TS, validate_decision(fields))
    if not follows:
        assert not any(key.startswith("follows_") for key in json.loads(payload))
    record = parse_event(payload)
    assert record["result"] == ("decision" if follows else "manual")
    assert record["outcome"] == "let_through" and record["officer"] == "CA-001"
    assert record["follows_reason"] == ("incomplete_series" if follows else None)


@pytest.mark.parametrize(("base", "change"), [
    (VERDICT, {"reason": "Paper Proof"}), (VERDICT, {"reason": "_leading"}), (VERDICT, {"reason": "a" * 65}),
    (VERDICT, {"result": "blue"}), (VERDICT, {"policy": "VN 2021"}), (VERDICT, {"trust_version": -1}),
    (VERDICT, {"dob": "1950-01-01"}), (DECISION, {"officer": "Nguyễn Văn An"}), (DECISION, {"outcome": "maybe"}),
    (DECISION, {"follows_result": "green"}), (DECISION, {"follows_reason": "x.y"}), (DECISION, {"name": "An"}),
])
def test_unit_and_central_refuse_the_same_fields(base: dict[str, object], change: dict[str, object]) -> None:
    fields = {**base, **change}
    with pytest.raises(EventFieldError) as unit_refusal:
        (validate_decision if "kind" in fields else validate_verdict)(fields)
    raw = json.dumps({"seq": 1, "ts": TS, **fields}).encode()
    with pytest.raises(Rejected) as central_refusal:
        parse_event(raw)
    assert central_refusal.value.reason in ("bad_field", "unknown_field")
    assert unit_refusal.value.field in str(central_refusal.value) or central_refusal.value.reason == "unknown_field"
    for said in (str(unit_refusal.value), str(central_refusal.value)):  # never a personal-looking value
        assert "Nguyễn" not in said and "1950" not in said and "VN 2021" not in said


def test_topics_have_one_prefix_that_both_sides_read() -> None:
    assert MqttConfig().topic_prefix == topics.PREFIX
    assert topics.parse_unit_topic(topics.event("IC7", "lane.1")) == ("IC7", "lane.1", "event")
    assert topics.parse_unit_topic(topics.status("IC7", "lane.1")) == ("IC7", "lane.1", "status")
    for other in (topics.ack("IC7", "lane.1"), topics.TRUST, topics.roster("IC7"), "chot/v2/IC7/lane.1/event",
                  "chot/v1/IC7/lane.1/extra/event"):
        assert topics.parse_unit_topic(other) is None
    assert topics.ALL_EVENTS == "chot/v1/+/+/event" and topics.ALL_ROSTERS == "chot/v1/+/roster"


def test_acks_cover_exactly_the_stored_seqs() -> None:
    seqs = [1, 2, 3, 7, 9, 10] + list(range(20, 2000, 2))
    covered = {n for payload in encode_acks(seqs) for first, last in parse_ack(payload) for n in range(first, last + 1)}
    assert covered == set(seqs)


def test_the_last_will_parses_as_offline() -> None:
    assert parse_status(OFFLINE)["state"] == "offline"
    with pytest.raises(Rejected):
        parse_status(b'{"state": "online", "name": "An"}')
