"""Attacks on officer PINs reach the supervisor (issue 26): the unit counts wrong PINs and
lock-outs, says so in its status (counts and roster staff ids only, never a PIN), the ingest
stores it, the devices page shows it and an alarm fires past `alarms.wrong_pins_per_hour`.

The end-to-end test runs the real path: the unit's OfficerDesk with a signed roster and real
scrypt, its MqttLink publishing `scanner.health.collect(...)`, the shipped Mosquitto config, the
ingest, the store (SQLite and PostgreSQL), the Flask app read through a logged-in supervisor.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

from dashboard.config import parse_config
from dashboard.ingest import MqttIngest, Rejected, parse_status
from dashboard.scope import Scope
from scanner import health
from scanner.config import MqttConfig
from scanner.mqtt import MqttLink
from scanner.officers import (
    FAILURES_BEFORE_LOCK,
    PIN_WINDOW_S,
    DeskError,
    OfficerDesk,
    RosterKeeper,
)
from scanner.outbox import Outbox
from tests.support.central import Central, central, wait_until  # noqa: F401 - central is a fixture
from tests.support.dashboard_web import login, password_hash
from tests.support.officers import officer, public_pem, roster_key, signed_roster
from verifier.decisions import DecisionRules

pytestmark = pytest.mark.timeout(120)
UTC = dt.UTC
CP, DEVICE = "IC7", "ic7-lane1"
WRONG_PIN = "739164"  # typed by the attacker: must appear nowhere but the request


class UnixClock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def make_desk(tmp_path: Path, unix: UnixClock, keeper: RosterKeeper | None = None) -> OfficerDesk:
    if keeper is None:
        key = roster_key()
        keeper = RosterKeeper(tmp_path / "roster.json", CP, lambda: [public_pem(key)])
        roster = signed_roster(key, CP, [officer("CA-0142", "4821"), officer("YT-0007", "9090")], [DEVICE])
        assert keeper.offer(roster, "test").accepted
    return OfficerDesk(keeper, DEVICE, lambda fields: 0, lambda: (DecisionRules.none(), None, None),
                       tmp_path / "signin.json", unix_clock=unix)


def attack(desk: OfficerDesk, unix: UnixClock, tries: list[str]) -> None:
    """Wrong PINs for these ids, waiting out each lock-out as a patient attacker would."""
    for officer_id in tries:
        unix.t = max(unix.t, desk.locked_until) + 1
        with pytest.raises(DeskError, match="Wrong officer or PIN"):
            desk.sign_in(officer_id, WRONG_PIN)


# -- the unit ------------------------------------------------------------------------------------
def test_the_unit_counts_wrong_pins_and_lockouts_by_the_hour(tmp_path: Path) -> None:
    unix = UnixClock()
    desk = make_desk(tmp_path, unix)
    assert desk.pin_report() == {"wrong_hour": 0, "wrong_total": 0, "lockouts": 0, "locked": False, "officers": []}
    attack(desk, unix, ["CA-0142", "CA-0142", "someone-typed-this", "YT-0007"])
    report = desk.pin_report()
    # The third wrong PIN in a row locked the desk; the fourth, after the wait, locked it again.
    assert report == {"wrong_hour": 4, "wrong_total": 4, "lockouts": 2, "locked": True,
                      "officers": ["CA-0142", "YT-0007"]}  # roster ids only: a typed id is not kept
    state = (tmp_path / "signin.json").read_text()
    assert WRONG_PIN not in state and "someone-typed-this" not in state
    # A restart keeps the counts (the state file), and an hour later only the totals remain.
    again = make_desk(tmp_path, unix, desk.roster)
    assert again.pin_report() == report
    unix.t += PIN_WINDOW_S + 1000
    assert again.pin_report() == {"wrong_hour": 0, "wrong_total": 4, "lockouts": 2, "locked": False, "officers": []}
    # A right PIN ends the run of failures but not the hour's count.
    attack(again, unix, ["CA-0142"])
    unix.t = again.locked_until + 1
    assert again.sign_in("CA-0142", "4821").id == "CA-0142"
    assert again.pin_report()["wrong_hour"] == 1 and FAILURES_BEFORE_LOCK == 3


def test_the_status_carries_the_report_and_the_ingest_takes_only_counts_and_ids() -> None:
    pins = {"wrong_hour": 7, "wrong_total": 31, "lockouts": 2, "locked": True, "officers": ["CA-0142"]}
    status = health.collect(now=dt.datetime.now(UTC), started_monotonic=time.monotonic(), pins=pins)
    parsed = parse_status(json.dumps(status).encode())
    assert (parsed.pin_wrong_hour, parsed.pin_wrong_total, parsed.pin_lockouts, parsed.pin_locked,
            parsed.pin_officers) == (7, 31, 2, True, "CA-0142")
    assert parse_status(json.dumps({"state": "online"}).encode()).pin_wrong_total is None  # an older unit
    for bad in ({**pins, "pin": "1234"}, {**pins, "wrong_hour": -1}, {**pins, "wrong_hour": "7"},
                {**pins, "officers": ["bad id with spaces"]}, {**pins, "officers": [f"id-{i}" for i in range(11)]},
                {**pins, "locked": "yes"}, [1, 2]):
        with pytest.raises(Rejected):
            parse_status(json.dumps({"state": "online", "pins": bad}).encode())


def test_the_threshold_is_configurable_and_checked() -> None:
    from dashboard.web import _from_dashboard_config

    assert parse_config({}).alarms.wrong_pins_per_hour == 10
    config = parse_config({"data_dir": "/tmp/x", "alarms": {"wrong_pins_per_hour": 4}})
    assert config.alarms.wrong_pins_per_hour == 4
    assert _from_dashboard_config(config)["CHOT_WRONG_PINS_PER_HOUR"] == 4
    with pytest.raises(Exception, match="wrong_pins_per_hour"):
        parse_config({"alarms": {"wrong_pins_per_hour": -1}})


# -- end to end ----------------------------------------------------------------------------------
def app_for(c: Central, tmp_path: Path, now: dt.datetime, threshold: int) -> Any:
    from dashboard.web import create_app

    return create_app(test_config={"TESTING": True, "SECRET_KEY": "test-secret-key", "CHOT_DATABASE": c.target,
                                   "CHOT_NOW": lambda: now, "INSTANCE_PATH": str(tmp_path / "instance"),
                                   "CHOT_WRONG_PINS_PER_HOUR": threshold})


@pytest.mark.broker
def test_wrong_pins_reach_the_devices_page_and_raise_the_alarm(central: Central, tmp_path: Path) -> None:
    creds = central.add_device(DEVICE, CP, province="25")
    central.add_device("hn-1", "HN", province="01")
    central.store.create_user("sup_pt", password_hash("phu-tho-password"), "supervisor", Scope.of(provinces=["25"]))
    central.store.create_user("sup_hn", password_hash("ha-noi-password"), "supervisor", Scope.of(provinces=["01"]))
    ingest = MqttIngest(central.store, central.config)
    ingest.start()
    unix = UnixClock()
    (tmp_path / "unit").mkdir()
    desk = make_desk(tmp_path / "unit", unix)
    outbox = Outbox(tmp_path / "unit" / "outbox.sqlite")
    started = time.monotonic()
    sent: list[dict[str, Any]] = []

    def status() -> dict[str, Any]:  # what the unit's health() builds (scanner/unit.py)
        body = health.collect(now=dt.datetime.now(UTC), started_monotonic=started, backlog=outbox.backlog(),
                              pins=desk.pin_report())
        sent.append(body)
        return body

    config = MqttConfig(host="127.0.0.1", port=central.port, password=creds.password, password_credential="none",
                        password_env="CHOT_TEST_NO_SUCH_VAR", keepalive=10)
    link = MqttLink(config, DEVICE, CP, outbox, status, lambda data: None, backoff_min=0.1, backoff_max=0.5)
    link.start()
    try:
        attack(desk, unix, ["CA-0142"] * 4 + ["YT-0007", "not-on-roster"])

        def stored() -> Any:
            return central.store.get_device(DEVICE)

        assert wait_until(lambda: stored().pin_wrong_hour == 6, 20), stored()
        d = stored()
        assert (d.pin_wrong_total, d.pin_lockouts, d.pin_officers) == (6, 4, "CA-0142,YT-0007")
        assert all(WRONG_PIN not in json.dumps(body) and "not-on-roster" not in json.dumps(body) for body in sent)

        now = dt.datetime.now(UTC)
        client = app_for(central, tmp_path, now, threshold=5).test_client()
        assert login(client, "sup_pt", "phu-tho-password").status_code == 302
        page = client.get("/devices").get_data(as_text=True)
        assert 'data-test-id="pins-ic7-lane1">6 / 6' in page
        assert "CA-0142, YT-0007" in page and "not-on-roster" not in page and WRONG_PIN not in page
        assert 'data-test-id="alarm-wrong_pins-ic7-lane1"' in page
        assert "6 lần nhập sai mã PIN cán bộ trong một giờ (4 lần bị khóa)" in page  # Vietnamese first
        api = client.get("/api/v1/alarms").get_json()["alarms"]
        alarm = next(a for a in api if a["kind"] == "wrong_pins")
        assert (alarm["device"], alarm["wrong_hour"], alarm["officers"]) == (DEVICE, 6, ["CA-0142", "YT-0007"])

        # The monitoring scrape carries the counts too (no ids there).
        metrics_app = app_for(central, tmp_path, now, threshold=5)
        metrics_app.config["CHOT_METRICS_TOKEN"] = "scrape-token"
        scrape = metrics_app.test_client().get("/metrics", headers={"Authorization": "Bearer scrape-token"})
        assert scrape.status_code == 200
        assert 'chot_device_wrong_pins_hour{device="ic7-lane1",checkpoint="IC7"} 6' in scrape.get_data(as_text=True)

        # Another province's supervisor sees neither the unit nor its alarm.
        other = app_for(central, tmp_path, now, threshold=5).test_client()
        assert login(other, "sup_hn", "ha-noi-password").status_code == 302
        assert "wrong_pins" not in json.dumps(other.get("/api/v1/alarms").get_json())

        # Below the threshold: counts on the page, no alarm; an hour after the report: no alarm.
        calm = app_for(central, tmp_path, now, threshold=7).test_client()
        login(calm, "sup_pt", "phu-tho-password")
        page = calm.get("/devices").get_data(as_text=True)
        assert 'data-test-id="pins-ic7-lane1">6 / 6' in page and "alarm-wrong_pins" not in page
        later = app_for(central, tmp_path, now + dt.timedelta(hours=2), threshold=5).test_client()
        login(later, "sup_pt", "phu-tho-password")
        assert "wrong_pins" not in json.dumps(later.get("/api/v1/alarms").get_json())

        # The hour passes on the unit: its next status says so and the stored count falls.
        unix.t += PIN_WINDOW_S + 1
        assert wait_until(lambda: stored().pin_wrong_hour == 0, 20), stored()
        assert stored().pin_wrong_total == 6
    finally:
        link.stop()
        ingest.stop()
        outbox.close()
