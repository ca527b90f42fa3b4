"""A unit that loses its link is not silent on the dashboard (issue 11): the offline alarm comes
after a configurable quiet time (90 s by default, not five minutes), before the broker's last
will if need be, and the unit's figures are shown as last known, with their age."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.config import parse_config
from dashboard.store import StatusUpdate
from tests.support.dashboard_web import PINNED_NOW, Seeded, login, make_app, seeded  # noqa: F401 - fixture

STATUS: dict[str, Any] = dict(software="chot 0.1.0", trust_version=7, trust_age_s=3600.0, clock="ok", fps=14.5,
              temperature_c=50.0, uptime_s=100.0)


class Clock:
    def __init__(self) -> None:
        self.now = PINNED_NOW

    def __call__(self) -> Any:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def app_with(seeded: Seeded, tmp_path: Path, clock: Clock, **overrides: Any) -> Any:
    # The unit reports a backlog of 9 just before its link is cut.
    seeded.store.record_status("u-ic7-1", StatusUpdate("online", backlog=9, **STATUS), PINNED_NOW)
    return make_app(seeded, tmp_path / "instance", CHOT_NOW=clock, **overrides)


def admin(app: Any) -> Any:
    c = app.test_client()
    assert login(c, "admin").status_code == 302
    return c


def offline_alarms(client: Any, device: str) -> list[dict[str, Any]]:
    return [a for a in client.get("/api/v1/alarms").json["alarms"] if a["kind"] == "offline" and a["device"] == device]


def unit(client: Any, device: str) -> dict[str, Any]:
    return next(d for d in client.get("/api/v1/devices").json["devices"] if d["id"] == device)


def test_default_offline_threshold_suits_a_checkpoint_supervisor() -> None:
    default = parse_config({}).alarms.offline_after_s
    # Longer than a unit's status interval (60 s) so a healthy unit never trips it, and far
    # shorter than the five minutes a checkpoint may have gone dark before.
    assert 60 < default <= 120
    assert parse_config({"alarms": {"offline_after_s": 30}}).alarms.offline_after_s == 30


def test_a_cut_link_raises_the_alarm_before_the_will_and_values_read_as_last_known(
        seeded: Seeded, tmp_path: Path, clock: Clock) -> None:
    c = admin(app_with(seeded, tmp_path, clock))
    assert offline_alarms(c, "u-ic7-1") == []
    assert unit(c, "u-ic7-1")["reporting"] is True and unit(c, "u-ic7-1")["last_known"] is False
    clock.now = PINNED_NOW + timedelta(seconds=60)  # one status interval: still fine
    assert offline_alarms(c, "u-ic7-1") == []
    # 100 s of silence: the broker still has it "online" (its keepalive has not run out).
    clock.now = PINNED_NOW + timedelta(seconds=100)
    [alarm] = offline_alarms(c, "u-ic7-1")
    assert alarm["since"].startswith(PINNED_NOW.strftime("%Y-%m-%dT%H:%M")) and alarm["state"] == "online"
    assert alarm["backlog_at_least"] == 9 and "mất kết nối" in alarm["text"]
    d = unit(c, "u-ic7-1")
    assert d["reporting"] is False and d["last_known"] is True
    assert d["values_age_s"] == pytest.approx(100) and d["trust_age_s"] == pytest.approx(3700)
    html = c.get("/devices").get_data(as_text=True)
    row = re.search(r'data-test-id="device-u-ic7-1" class="last-known">(.*?)</tr>', html, re.S).group(1)
    assert "Số liệu lần cuối nhận, 100 giây trước" in row and "≥ 9" in row and "≥ 61 phút" in row
    assert 'data-state="online"' in row and "Mất kết nối" in row  # silent: shown as offline
    # The broker's will arrives: still one alarm, since the last word from the unit.
    seeded.store.record_status("u-ic7-1", StatusUpdate("offline"), PINNED_NOW + timedelta(seconds=45))
    [alarm] = offline_alarms(c, "u-ic7-1")
    assert alarm["state"] == "offline" and alarm["since"].startswith(PINNED_NOW.strftime("%Y-%m-%dT%H:%M"))
    clock.now = PINNED_NOW + timedelta(minutes=10)  # the trust age keeps counting while it is away
    assert unit(c, "u-ic7-1")["trust_age_s"] == pytest.approx(3600 + 600)


def test_the_threshold_is_configurable_and_a_healthy_unit_never_alarms(
        seeded: Seeded, tmp_path: Path, clock: Clock) -> None:
    c = admin(app_with(seeded, tmp_path, clock, CHOT_OFFLINE_ALARM_S=30))
    clock.now = PINNED_NOW + timedelta(seconds=35)
    assert len(offline_alarms(c, "u-ic7-1")) == 1
    for step in range(1, 6):  # reporting every 60 s under the 90 s default: never an alarm
        at = PINNED_NOW + timedelta(seconds=60 * step)
        seeded.store.record_status("u-hn-1", StatusUpdate("online", backlog=0, **STATUS), at)
        clock.now = at + timedelta(seconds=59)
    c2 = admin(make_app(seeded, tmp_path / "instance2", CHOT_NOW=clock))
    assert offline_alarms(c2, "u-hn-1") == [] and unit(c2, "u-hn-1")["last_known"] is False
