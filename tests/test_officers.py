"""Officer rosters, PIN sign-in and decisions on the unit (scanner.officers, protocol.roster,
verifier.decisions), with real signatures, real scrypt and a real SQLite outbox."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from scanner.officers import FAILURES_BEFORE_LOCK, DeskError, OfficerDesk, RosterKeeper
from scanner.outbox import Outbox, OutboxFieldError
from tests.support.officers import officer, public_pem, roster_key, signed_roster
from protocol.events import EventFieldError as DecisionFieldError
from protocol.events import validate_decision
from verifier.decisions import DecisionRules, DecisionRulesError
from verifier.policy import Policy, PolicyDocumentError, builtin_policy
from protocol.roster import (
    SCRYPT_N, RosterCheckpointError, RosterFormatError, RosterSignatureError, RosterVersionError, hash_pin,
    load_public_keys, parse_roster,
)

UTC = dt.timezone.utc
CP = "IC7"
DEVICE = "ic7-lane1"


class Clock:
    """A monotonic and a Unix clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.unix = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.unix += seconds


@pytest.fixture
def key():
    return roster_key()


@pytest.fixture
def officers():
    return [officer("CA-0142", "4821", "Nguyễn Văn An"), officer("YT-0007", "9090", "Trần Thị Bình", role="health")]


@pytest.fixture
def desk_parts(tmp_path, key, officers):
    keys = [public_pem(key)]
    keeper = RosterKeeper(tmp_path / "roster.json", CP, lambda: keys)
    assert keeper.offer(signed_roster(key, CP, officers, [DEVICE, "ic7-lane2"]), "test").accepted
    outbox = Outbox(tmp_path / "outbox.sqlite")
    policy = builtin_policy("vn-2021")
    clock = Clock()
    rules = {"policy": policy}

    def make_desk(**kw):
        return OfficerDesk(keeper, DEVICE, lambda fields: outbox.record(fields, dt.datetime.now(UTC)),
                           lambda: (rules["policy"].decisions, rules["policy"].name, 3), tmp_path / "signin.json",
                           clock=clock, unix_clock=lambda: clock.unix, **kw)

    yield keeper, outbox, make_desk, clock, rules, keys
    outbox.close()


def pending_events(outbox):
    return [json.loads(e.payload()) for e in outbox.pending(limit=1000)]


# -- roster ------------------------------------------------------------------------------------
def test_roster_round_trip_and_pin_check(key, officers):
    data = signed_roster(key, CP, officers, [DEVICE])
    roster = parse_roster(data, load_public_keys([public_pem(key)]), checkpoint=CP)
    assert roster.version == 1 and roster.allows_device(DEVICE) and not roster.allows_device("other")
    an = roster.officer("CA-0142")
    assert an is not None and an.name == "Nguyễn Văn An"
    assert an.pin.matches("4821") and not an.pin.matches("4822") and not an.pin.matches("")
    assert roster.officer("nobody") is None
    # The document holds hashes only: no PIN in clear.
    assert b"4821" not in data and "4821" not in json.dumps(json.loads(data))


def test_roster_refusals(key, officers):
    keys = load_public_keys([public_pem(key)])
    other = roster_key()
    with pytest.raises(RosterSignatureError):
        parse_roster(signed_roster(other, CP, officers, [DEVICE]), keys, checkpoint=CP)
    with pytest.raises(RosterCheckpointError):
        parse_roster(signed_roster(key, "HN-01", officers, [DEVICE]), keys, checkpoint=CP)
    with pytest.raises(RosterVersionError):
        parse_roster(signed_roster(key, CP, officers, [DEVICE], version=2), keys, checkpoint=CP, min_version=3)
    # A flipped byte in the payload breaks the signature.
    doc = json.loads(signed_roster(key, CP, officers, [DEVICE]))
    body = bytearray(base64.b64decode(doc["payload"]))
    body[10] ^= 1
    doc["payload"] = base64.b64encode(bytes(body)).decode()
    with pytest.raises((RosterSignatureError, RosterFormatError)):
        parse_roster(json.dumps(doc).encode(), keys, checkpoint=CP)
    for bad in (b"", b"[]", b"{\"format\": \"chot-roster/1\"}", b"\xff" * 10, b"{" * 100000):
        with pytest.raises(RosterFormatError):
            parse_roster(bad, keys, checkpoint=CP)


def test_pin_hash_is_salted_and_slow_by_default():
    a, b = hash_pin("4821", b"a" * 16), hash_pin("4821", b"b" * 16)
    assert a.n == SCRYPT_N >= 2**14 and a.key != b.key  # per-officer salt: equal PINs, different hashes
    assert a.n * a.r * 128 >= 16 * 1024 * 1024  # 16 MiB of memory per guess
    assert a.matches("4821") and not b.matches("1234")
    with pytest.raises(RosterFormatError):
        hash_pin("12", b"a" * 16)  # too short to be a PIN
    with pytest.raises(RosterFormatError):
        hash_pin("4821", b"short")


def test_keeper_keeps_the_old_roster_on_bad_or_older_offers(tmp_path, key, officers):
    keys = [public_pem(key)]
    keeper = RosterKeeper(tmp_path / "roster.json", CP, lambda: keys)
    assert keeper.offer(signed_roster(key, CP, officers, [DEVICE], version=5), "mqtt").accepted
    for data in (signed_roster(key, CP, officers[:1], [DEVICE], version=4),
                 signed_roster(roster_key(), CP, officers[:1], [DEVICE], version=6),
                 signed_roster(key, "HN-01", officers[:1], [DEVICE], version=7), b"garbage"):
        result = keeper.offer(data, "mqtt")
        assert not result.accepted and result.reason
        assert keeper.current.version == 5 and len(keeper.current.officers) == 2
    assert keeper.refused == 4
    # Restart: the saved roster comes back; a withdrawn roster key drops it.
    again = RosterKeeper(tmp_path / "roster.json", CP, lambda: keys)
    assert again.current is not None and again.current.version == 5
    keys.clear()
    again.recheck()
    assert again.current is None


# -- sign-in -----------------------------------------------------------------------------------
def test_sign_in_and_throttle_survives_restart(desk_parts):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    desk = make_desk()
    for _ in range(FAILURES_BEFORE_LOCK):
        with pytest.raises(DeskError) as err:
            desk.sign_in("CA-0142", "0000")
        assert err.value.code == "wrong_pin"
    with pytest.raises(DeskError) as err:
        desk.sign_in("CA-0142", "4821")  # right PIN, but locked out
    assert err.value.code == "locked" and "giây" in err.value.message_vi
    assert desk.officer is None
    restarted = make_desk()  # a reboot does not clear the lock
    with pytest.raises(DeskError) as err:
        restarted.sign_in("CA-0142", "4821")
    assert err.value.code == "locked"
    clock.advance(31)
    assert restarted.sign_in("CA-0142", "4821").id == "CA-0142"
    assert restarted.failures == 0 and restarted.failures_total == FAILURES_BEFORE_LOCK


def test_lock_grows_with_more_wrong_pins(desk_parts):
    *_, make_desk, clock, _rules, _keys = desk_parts
    desk = make_desk()
    waits = []
    for _ in range(3):
        for _ in range(FAILURES_BEFORE_LOCK if not waits else 1):
            with pytest.raises(DeskError):
                desk.sign_in("YT-0007", "1111")
        waits.append(desk.locked_until - clock.unix)
        clock.advance(waits[-1] + 1)
    assert waits[0] < waits[1] < waits[2]


def test_unknown_officer_and_bad_input_are_wrong_pins(desk_parts):
    *_, make_desk, _clock, _rules, _keys = desk_parts
    desk = make_desk()
    for officer_id, pin in (("nobody", "4821"), (None, "4821"), ("CA-0142", None), ("CA-0142", "48210000000")):
        with pytest.raises(DeskError) as err:
            desk.sign_in(officer_id, pin)
        assert err.value.code in ("wrong_pin", "locked")


def test_idle_sign_out(desk_parts):
    *_, make_desk, clock, _rules, _keys = desk_parts
    desk = make_desk(idle_s=120)
    desk.sign_in("CA-0142", "4821")
    clock.advance(100)
    assert desk.officer is not None
    clock.advance(30)
    assert desk.officer is None


def test_revoked_officer_and_unit_stop_at_the_next_roster(desk_parts, key, officers):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    desk = make_desk()
    desk.sign_in("CA-0142", "4821")
    # Roster 2 drops officer CA-0142: signed out at once, and cannot sign in again.
    assert keeper.offer(signed_roster(key, CP, officers[1:], [DEVICE], version=2), "mqtt").accepted
    assert desk.officer is None
    with pytest.raises(DeskError) as err:
        desk.sign_in("CA-0142", "4821")
    assert err.value.code == "wrong_pin"
    desk.sign_in("YT-0007", "9090")
    # Roster 3 no longer lists this unit: nobody can sign in on it.
    assert keeper.offer(signed_roster(key, CP, officers, ["ic7-lane2"], version=3), "mqtt").accepted
    assert desk.officer is None
    with pytest.raises(DeskError) as err:
        desk.sign_in("YT-0007", "9090")
    assert err.value.code == "unit_revoked"


def test_expired_roster_refuses_sign_in(tmp_path, key, officers):
    keys = [public_pem(key)]
    keeper = RosterKeeper(tmp_path / "roster.json", CP, lambda: keys)
    old = dt.datetime.now(UTC) - dt.timedelta(days=10)
    assert keeper.offer(signed_roster(key, CP, officers, [DEVICE], issued_at=old, days=7), "test").accepted
    desk = OfficerDesk(keeper, DEVICE, lambda f: 0, lambda: (DecisionRules.none(), None, None),
                       tmp_path / "signin.json")
    with pytest.raises(DeskError) as err:
        desk.sign_in("CA-0142", "4821")
    assert err.value.code == "roster_expired"


# -- decisions ---------------------------------------------------------------------------------
def test_decision_on_a_red_is_one_event(desk_parts):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    desk = make_desk()
    seq = outbox.record({"result": "red", "reason": "too_soon_after_dose", "policy": "vn-2021", "trust_version": 3},
                        dt.datetime.now(UTC))
    desk.note_verdict("red", "too_soon_after_dose", "vn-2021", 3, seq)
    with pytest.raises(DeskError) as err:
        desk.decide("let_through", "paper_proof", seq)
    assert err.value.code == "not_signed_in"
    desk.sign_in("CA-0142", "4821")
    decision_seq = desk.decide("let_through", "paper_proof", seq)
    with pytest.raises(DeskError) as err:  # a double tap
        desk.decide("let_through", "paper_proof", seq)
    assert err.value.code == "already_decided"
    events = pending_events(outbox)
    assert len(events) == 2
    assert events[1] == {"seq": decision_seq, "ts": events[1]["ts"], "kind": "decision", "outcome": "let_through",
                         "reason": "paper_proof", "officer": "CA-0142", "policy": "vn-2021", "trust_version": 3,
                         "follows_seq": seq, "follows_result": "red", "follows_reason": "too_soon_after_dose"}
    assert outbox.counts_today(dt.date.today(), kinds=("decision", "manual")) == {"decision": 1, "manual": 0}


def test_refusals_record_nothing(desk_parts):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    desk = make_desk(hold_s=30)
    desk.sign_in("YT-0007", "9090")
    with pytest.raises(DeskError) as err:
        desk.decide("let_through", "paper_proof", 1)  # no verdict on screen
    assert err.value.code == "nothing_to_decide"
    seq = outbox.record({"result": "green", "reason": "complete_series", "policy": "vn-2021", "trust_version": 3},
                        dt.datetime.now(UTC))
    desk.note_verdict("green", "complete_series", "vn-2021", 3, seq)
    with pytest.raises(DeskError) as err:
        desk.decide("let_through", "paper_proof", seq)  # a green needs no decision
    assert err.value.code == "nothing_to_decide"
    seq = outbox.record({"result": "yellow", "reason": "partial_vaccination", "policy": "vn-2021"},
                        dt.datetime.now(UTC))
    desk.note_verdict("yellow", "partial_vaccination", "vn-2021", 3, seq)
    for outcome, reason, code in (("let_through", "bribe", "reason_not_allowed"),
                                  ("turned_back", "paper_proof", "reason_not_allowed"),
                                  ("let_through", None, "reason_not_allowed")):
        with pytest.raises(DeskError) as err:
            desk.decide(outcome, reason, seq)
        assert err.value.code == code and err.value.message_vi
    clock.advance(31)  # the verdict left the screen
    with pytest.raises(DeskError) as err:
        desk.decide("turned_back", "no_proof", seq)
    assert err.value.code == "nothing_to_decide"
    assert [e["result"] for e in pending_events(outbox)] == ["green", "yellow"]


def test_policy_says_whether_paper_proof_lifts_red(desk_parts):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    rules["policy"] = builtin_policy("workplace")  # paper proof lifts only yellow here
    desk = make_desk()
    desk.sign_in("CA-0142", "4821")
    seq = outbox.record({"result": "red", "reason": "policy_not_met", "policy": "workplace"}, dt.datetime.now(UTC))
    desk.note_verdict("red", "policy_not_met", "workplace", 3, seq)
    with pytest.raises(DeskError) as err:
        desk.decide("let_through", "paper_proof", seq)
    assert err.value.code == "reason_not_allowed_here"
    assert desk.decide("let_through", "medical_exemption", seq) > seq
    doc = builtin_policy("vn-2021").to_document()
    doc["decisions"]["allowed"] = False
    rules["policy"] = Policy.from_document(doc)
    seq = outbox.record({"result": "red", "reason": "policy_not_met", "policy": "vn-2021"}, dt.datetime.now(UTC))
    desk.note_verdict("red", "policy_not_met", "vn-2021", 3, seq)
    with pytest.raises(DeskError) as err:
        desk.decide("turned_back", "no_proof", seq)
    assert err.value.code == "decisions_not_allowed"


def test_manual_check_token_stops_double_taps(desk_parts):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    desk = make_desk()
    desk.sign_in("CA-0142", "4821")
    token = desk.manual_token
    seq = desk.manual_check("let_through", "paper_proof", token)
    with pytest.raises(DeskError) as err:
        desk.manual_check("let_through", "paper_proof", token)
    assert err.value.code == "already_recorded"
    desk.manual_check("turned_back", "no_proof", desk.manual_token)
    events = pending_events(outbox)
    assert [e["seq"] for e in events][0] == seq
    assert all("follows_seq" not in e for e in events)
    assert outbox.counts_today(dt.date.today(), kinds=("decision", "manual")) == {"decision": 0, "manual": 2}


def test_view_holds_staff_data_only(desk_parts):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    desk = make_desk()
    view = json.dumps(desk.view(), ensure_ascii=False)
    assert "Nguyễn Văn An" in view and "4821" not in view and "hash" not in view and "salt" not in view


# -- the decision event contract and the policy's rules ----------------------------------------
def test_decision_fields_are_whitelisted(tmp_path):
    good = {"kind": "decision", "outcome": "turned_back", "reason": "no_proof", "officer": "CA-1",
            "policy": "vn-2021", "trust_version": None}
    assert validate_decision(good)["follows_seq"] is None
    for change, field in (({"name": "Nguyễn"}, "name"), ({"outcome": "maybe"}, "outcome"),
                          ({"officer": "Nguyễn Văn An"}, "officer"), ({"follows_result": "red"}, "follows_result"),
                          ({"follows_seq": 3, "follows_result": "green", "follows_reason": "x"}, "follows_result"),
                          ({"reason": "Paper Proof"}, "reason"), ({"kind": "verdict"}, "kind")):
        with pytest.raises(DecisionFieldError) as err:
            validate_decision({**good, **change})
        assert err.value.field == field
    box = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(OutboxFieldError):
        box.record({**good, "dob": "1950-01-01"}, dt.datetime.now(UTC))
    assert box.backlog() == 0
    box.close()


def test_decision_rules_document_errors():
    doc = builtin_policy("vn-2021").to_document()
    for path, change in (("version", {"version": 0}), ("reasons[0].outcome", None), ("correction.portal", None),
                         ("colour", {"colour": "red"})):
        bad = json.loads(json.dumps(doc["decisions"]))
        if path == "reasons[0].outcome":
            bad["reasons"][0]["outcome"] = "wave"
        elif path == "correction.portal":
            bad["correction"]["portal"] = "javascript:alert(1)"
        else:
            bad.update(change)
        with pytest.raises(DecisionRulesError) as err:
            DecisionRules.from_document(bad)
        assert err.value.path == path
        with pytest.raises(PolicyDocumentError):
            Policy.from_document({**doc, "decisions": bad})


def test_next_steps_name_the_ministry_channel_from_the_policy():
    rules = builtin_policy("vn-2021").decisions
    step = rules.next_step("too_soon_after_dose", "red")
    assert step["correction"]["portal"].startswith("https://") and step["correction"]["hotline"]
    assert "correction" not in rules.next_step("signature", "red")  # a forgery is no record gap
    assert rules.next_step("something_new", "yellow")["en"]  # a default for reasons without their own text
    doc = builtin_policy("vn-2021").to_document()
    doc["decisions"]["correction"]["hotline"] = "1800 1234"
    assert Policy.from_document(doc).decisions.next_step("too_soon_after_dose", "red")["correction"]["hotline"] == "1800 1234"


def test_an_outbox_from_before_decisions_is_upgraded_in_place(tmp_path):
    import sqlite3

    path = tmp_path / "outbox.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, result TEXT NOT NULL,"
                 " reason TEXT NOT NULL, policy TEXT, trust_version INTEGER, sent_at REAL)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER)")
    conn.execute("CREATE TABLE counts (day TEXT, result TEXT, n INTEGER, PRIMARY KEY (day, result))")
    conn.execute("INSERT INTO events VALUES (1, '2026-01-01T00:00:00.000000Z', 'red', 'signature', 'vn-2021', 1, NULL)")
    conn.execute("INSERT INTO meta VALUES ('next_seq', 2)")
    conn.commit()
    conn.close()
    box = Outbox(path)
    seq = box.record({"kind": "decision", "outcome": "turned_back", "reason": "no_proof", "officer": "CA-1",
                      "follows_seq": 1, "follows_result": "red", "follows_reason": "signature",
                      "policy": "vn-2021", "trust_version": 1}, dt.datetime.now(UTC))
    assert seq == 2
    old, new = box.pending()
    assert json.loads(old.payload()) == {"seq": 1, "ts": "2026-01-01T00:00:00.000000Z", "result": "red",
                                         "reason": "signature", "policy": "vn-2021", "trust_version": 1}
    assert json.loads(new.payload())["follows_seq"] == 1
    box.close()


def test_screen_actions_need_json_from_this_host(desk_parts):
    import http.client

    from scanner.screen import OfficerScreen

    *_, make_desk, _clock, _rules, _keys = desk_parts
    screen = OfficerScreen("127.0.0.1", 0, desk=make_desk())
    screen.start()
    port = screen.server.server_address[1]

    def post(path, body, content_type="application/json", host=f"127.0.0.1:{port}"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", path, body=body, headers={"Content-Type": content_type, "Host": host})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    try:
        pin = json.dumps({"officer": "CA-0142", "pin": "4821"})
        # A cross-site form (no JSON content type) or another host cannot act for the officer.
        assert post("/api/signin", pin, content_type="application/x-www-form-urlencoded")[0] == 415
        assert post("/api/signin", pin, content_type="text/plain")[0] == 415
        assert post("/api/signin", pin, host="evil.example:80")[0] == 403
        assert screen.desk.officer is None
        assert post("/api/signin", "[1, 2]")[0] == 400
        assert post("/api/signin", "x" * 5000)[0] == 413
        status, body = post("/api/decide", json.dumps({"outcome": "let_through", "reason": "paper_proof",
                                                       "follows_seq": 1}))
        assert status == 409 and json.loads(body)["error"]["code"] == "not_signed_in"
        status, body = post("/api/signin", pin)
        assert status == 200 and json.loads(body) == {"ok": True, "officer": "CA-0142"}
        status, body = post("/api/nothing", "{}")
        assert status == 404
    finally:
        screen.stop()


def test_a_verdict_that_left_the_screen_cannot_be_decided(desk_parts):
    keeper, outbox, make_desk, clock, rules, keys = desk_parts
    shown = {"on": True}
    desk = make_desk(on_screen=lambda: shown["on"])
    desk.sign_in("CA-0142", "4821")
    seq = outbox.record({"result": "red", "reason": "policy_not_met", "policy": "vn-2021"}, dt.datetime.now(UTC))
    desk.note_verdict("red", "policy_not_met", "vn-2021", 3, seq)
    assert desk.pending() is not None
    shown["on"] = False  # the screen dropped it (and the holder's data with it)
    assert desk.pending() is None and desk.view()["pending"] is None
    with pytest.raises(DeskError) as err:
        desk.decide("let_through", "paper_proof", seq)
    assert err.value.code == "nothing_to_decide"


def test_screen_holds_a_verdict_while_deciding_and_releases_it():
    from scanner.screen.state import ScreenState
    from verifier import Verdict

    now = {"t": 0.0}
    state = ScreenState(verdict_seconds=4.0, clock=lambda: now["t"])
    state.hold(60)  # nothing on screen: nothing to hold
    assert not state.has_verdict
    state.show(Verdict("red", "policy_not_met", "Not met", "Không đạt", policy="vn-2021"))
    state.hold(60)
    version = state.version
    state.hold(59.8)  # no real change: no update sent to the page
    assert state.version == version
    now["t"] = 30.0
    state.expire_due()
    assert state.has_verdict  # past verdict_seconds, still up: the officer is deciding
    state.release(2.0)
    now["t"] = 32.5
    state.expire_due()
    assert not state.has_verdict
