"""Officer decisions end to end on real parts: the dashboard signs and publishes the roster, a
unit takes it over the shipped broker config (accounts, ACL), an officer signs in with a PIN and
decides, and the ingest stores each decision exactly once, through a broker restart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard import devices, officers
from dashboard.ingest import MqttIngest, Rejected, parse_event
from dashboard.scope import Scope
from dashboard.store import Event, SqliteStore
from scanner.config import MqttConfig
from scanner.mqtt import MqttLink
from scanner.officers import DeskError, OfficerDesk, RosterKeeper
from scanner.outbox import Outbox
from scanner.trust_sync import TrustKeeper
from tests.support.central import start_central
from tests.test_scanner_report_support import wait_until
from verifier.policy import builtin_policy

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]
UTC = timezone.utc


def test_roster_to_unit_and_decisions_to_store_exactly_once(tmp_path, mosquitto_factory, ministry, store_target):
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(ministry.anchor_pem)
    central = start_central(tmp_path, mosquitto_factory, store_target=store_target, anchor_file=str(anchor))
    creds = central.add_device("ic7-lane1", "IC7")
    central.add_device("ic7-lane2", "IC7")
    officers.add_officer(central.store, central.config, "IC7", "CA-0142", "Nguyễn Văn An", "police", "482159")
    # The ministry lists the dashboard's roster key in the signed bundle the unit trusts.
    trust = TrustKeeper(tmp_path / "unit" / "trust", ministry.anchor_pem)
    assert trust.offer(ministry.bundle(version=1, roster_keys=[officers.public_pem(central.config)]), "file").accepted
    ingest = MqttIngest(central.store, central.config)
    ingest.start()
    outbox = Outbox(tmp_path / "unit" / "outbox.sqlite")
    keeper = RosterKeeper(tmp_path / "unit" / "roster.json", "IC7", lambda: trust.current.roster_keys)
    policy = builtin_policy("vn-2021")
    desk = OfficerDesk(keeper, "ic7-lane1", lambda f: outbox.record(f, datetime.now(UTC)),
                       lambda: (policy.decisions, policy.name, 1), tmp_path / "unit" / "signin.json")
    config = MqttConfig(host="127.0.0.1", port=central.port, password=creds.password, password_credential="none",
                        password_env="CHOT_TEST_NO_SUCH_VAR", keepalive=10, central_ack_timeout_s=2)
    link = MqttLink(config, "ic7-lane1", "IC7", outbox, lambda: {"backlog": outbox.backlog()},
                    lambda data: trust.offer(data, "mqtt"), backoff_min=0.1, backoff_max=0.5,
                    on_roster=lambda data: keeper.offer(data, "mqtt"))
    link.start()
    try:
        wait_until(lambda: keeper.current is not None, 15, "the unit to take the published roster")
        assert keeper.current.version == 1 and keeper.current.officer("CA-0142") is not None
        assert desk.sign_in("CA-0142", "482159").id == "CA-0142"

        now = datetime.now(UTC)
        red = outbox.record({"result": "red", "reason": "too_soon_after_dose", "policy": "vn-2021",
                             "trust_version": 1}, now)
        desk.note_verdict("red", "too_soon_after_dose", "vn-2021", 1, red)
        desk.decide("let_through", "paper_proof", red)
        yellow = outbox.record({"result": "yellow", "reason": "partial_vaccination", "policy": "vn-2021",
                                "trust_version": 1}, now)
        desk.note_verdict("yellow", "partial_vaccination", "vn-2021", 1, yellow)
        desk.decide("turned_back", "no_proof", yellow)
        desk.manual_check("let_through", "paper_proof", desk.manual_token)
        link.wake()
        wait_until(lambda: link.sent >= 2, 15, "the first events to go out")
        central.broker.restart()  # the decisions in flight are sent again; the store keeps one of each
        wait_until(lambda: outbox.backlog() == 0, 30, "the outbox to drain")
        assert ingest.wait_idle(10)
        day = (now - timedelta(hours=1), now + timedelta(hours=1))
        totals = central.store.totals(Scope.all(), *day)
        assert (totals.red, totals.yellow, totals.decision, totals.manual) == (1, 1, 2, 1)
        assert totals.total == 2  # the verdicts; decisions are counted beside them
        rows = central.store.decision_counts(Scope.all(), *day)
        assert {(r.officer, r.outcome, r.reason, r.follows_result, r.follows_reason, r.count) for r in rows} == {
            ("CA-0142", "let_through", "paper_proof", "red", "too_soon_after_dose", 1),
            ("CA-0142", "turned_back", "no_proof", "yellow", "partial_vaccination", 1),
            ("CA-0142", "let_through", "paper_proof", "", "", 1)}
        assert not ingest.stats.rejected

        # Revoking the unit publishes a roster without it first: it stops taking sign-ins.
        devices.remove_device(central.store, central.config, "ic7-lane1")
        wait_until(lambda: keeper.current.version == 2, 15, "the unit to hear the roster that drops it")
        assert desk.officer is None
        with pytest.raises(DeskError) as err:
            desk.sign_in("CA-0142", "482159")
        assert err.value.code == "unit_revoked"
    finally:
        link.stop()
        ingest.stop()
        outbox.close()
        central.store.close()


def test_store_counts_a_resent_decision_once(tmp_path):
    store = SqliteStore(tmp_path / "chot.db")
    store.upsert_checkpoint("IC7", "IC7", "001", "25")
    now = datetime.now(UTC)
    decision = Event("u1", "IC7", 8, now, "decision", "paper_proof", "vn-2021", 1, now, "let_through", "CA-1",
                     7, "red", "incomplete_series")
    assert store.record_events([decision]) == 1
    assert store.record_events([decision, decision]) == 0
    day = (now - timedelta(hours=1), now + timedelta(hours=1))
    assert store.totals(Scope.all(), *day).decision == 1
    assert [r.count for r in store.decision_counts(Scope.all(), *day)] == [1]
    assert store.recent_events(Scope.all())[0].officer == "CA-1"
    store.prune_events(now + timedelta(days=1))  # single events go, the counts stay
    assert store.totals(Scope.all(), *day).decision == 1
    assert [r.count for r in store.decision_counts(Scope.all(), *day)] == [1]
    store.close()


@pytest.mark.parametrize("payload, reason", [
    (b'{"seq":1,"ts":"2026-01-01T00:00:00Z","kind":"decision","outcome":"let_through","reason":"paper_proof",'
     b'"officer":"CA-1","policy":"vn-2021","name":"Nguyen"}', "unknown_field"),
    (b'{"seq":1,"ts":"2026-01-01T00:00:00Z","kind":"decision","outcome":"let_through","reason":"paper_proof",'
     b'"policy":"vn-2021"}', "missing_field"),
    (b'{"seq":1,"ts":"2026-01-01T00:00:00Z","kind":"decision","outcome":"wave","reason":"paper_proof",'
     b'"officer":"CA-1","policy":"vn-2021"}', "bad_field"),
    (b'{"seq":1,"ts":"2026-01-01T00:00:00Z","kind":"decision","outcome":"let_through","reason":"paper_proof",'
     b'"officer":"CA-1","policy":"vn-2021","follows_seq":0,"follows_result":"red","follows_reason":"x"}', "bad_field"),
    (b'{"seq":1,"ts":"2026-01-01T00:00:00Z","result":"red","reason":"x","policy":"vn-2021","officer":"CA-1"}',
     "unknown_field"),
])
def test_ingest_refuses_bad_decisions(payload, reason):
    with pytest.raises(Rejected) as err:
        parse_event("IC7", "u1", payload, datetime.now(UTC))
    assert err.value.reason == reason
    assert b"Nguyen" not in str(err.value).encode()


def test_ingest_reads_a_decision():
    payload = (b'{"seq":9,"ts":"2026-01-01T00:00:00Z","kind":"decision","outcome":"let_through",'
               b'"reason":"paper_proof","officer":"CA-1","policy":"vn-2021","trust_version":3,'
               b'"follows_seq":8,"follows_result":"red","follows_reason":"incomplete_series"}')
    event = parse_event("IC7", "u1", payload, datetime.now(UTC))
    assert (event.result, event.outcome, event.officer, event.follows_seq) == ("decision", "let_through", "CA-1", 8)
    manual = parse_event("IC7", "u1", payload.split(b',"follows_seq"')[0] + b"}", datetime.now(UTC))
    assert manual.result == "manual" and manual.follows_seq is None


def test_admin_manages_officers_on_the_dashboard(tmp_path, mosquitto_factory):
    from dashboard.web import create_app
    from tests.support.dashboard_web import ACCOUNTS, login, password_hash

    central = start_central(tmp_path, mosquitto_factory)
    central.add_device("ic7-lane1", "IC7", "080", "10", "IC7 Nội Bài–Lào Cai")
    central.store.create_user("admin", password_hash(ACCOUNTS["admin"][0]), "admin", Scope.all())
    app = create_app(central.config, {"SECRET_KEY": "test-key"})
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    page = client.get("/admin/officers").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": token, "checkpoint": "IC7", "officer": "CA-0142", "name": "Nguyễn Văn An",
            "role": "police", "pin": "482159"}
    resp = client.post("/admin/officers", data=form)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert 'data-test-id="admin-officer-IC7-CA-0142"' in resp.get_data(as_text=True)
    assert central.store.latest_roster("IC7").version == 1
    assert "482159" not in resp.get_data(as_text=True)
    assert b"482159" not in open(central.config.database, "rb").read()  # only the salted hash is kept
    for bad, field in (({"pin": "12"}, "PIN"), ({"pin": "111111"}, "PIN"), ({"role": "king"}, "role")):
        resp = client.post("/admin/officers", data={**form, **bad})
        assert resp.status_code == 400 and field in resp.get_data(as_text=True)
    resp = client.post("/admin/officers/IC7/CA-0142/remove", data={"csrf_token": token})
    assert resp.status_code == 200 and central.store.list_officers(Scope.all()) == []
    assert central.store.latest_roster("IC7").version == 2
    logged = [(e.actor, e.action, e.target, e.province) for e in central.store.audit_log(Scope.of(provinces=["10"]))]
    assert logged == [("admin", "officer_removed", "IC7/CA-0142", "10"), ("admin", "officer_saved", "IC7/CA-0142", "10")]
    central.store.close()
