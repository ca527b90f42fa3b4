"""Clock guard and health snapshot."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from scanner.clock import ClockGuard, ClockState
from scanner.health import collect, cpu_temperature, stable_part

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


def test_clock_ok_without_history(tmp_path):
    guard = ClockGuard(tmp_path / "clock.json")
    assert guard.check(T0, None) == ClockState(True, "ok")
    assert guard.check(T0, T0 - timedelta(hours=3)) == ClockState(True, "ok")


def test_clock_behind_bundle(tmp_path):
    guard = ClockGuard(tmp_path / "clock.json")
    boot_time = datetime(1970, 1, 1, tzinfo=timezone.utc)  # a Pi before NTP answers
    assert guard.check(boot_time, T0) == ClockState(False, "behind_bundle")
    # Within the tolerance a bundle signed on a slightly fast clock is fine.
    assert guard.check(T0 - timedelta(minutes=2), T0).ok


def test_clock_behind_last_seen_across_restart(tmp_path):
    path = tmp_path / "clock.json"
    guard = ClockGuard(path, save_every=timedelta(minutes=1))
    guard.record(T0)
    guard.record(T0 + timedelta(seconds=30))  # throttled: not written yet
    assert json.loads(path.read_text())["last_seen"] == T0.isoformat()
    guard.record(T0 + timedelta(hours=2))
    assert json.loads(path.read_text())["last_seen"] == (T0 + timedelta(hours=2)).isoformat()
    restarted = ClockGuard(path)
    assert restarted.check(T0 + timedelta(hours=1), None) == ClockState(False, "behind_last_seen")
    assert restarted.check(T0 + timedelta(hours=2, minutes=1), None).ok


def test_clock_going_back_does_not_lower_the_mark(tmp_path):
    path = tmp_path / "clock.json"
    guard = ClockGuard(path, save_every=timedelta(0))
    guard.record(T0)
    guard.record(T0 - timedelta(days=1))
    assert guard.last_seen == T0
    assert ClockGuard(path).last_seen == T0


def test_flush_writes_the_throttled_time(tmp_path):
    path = tmp_path / "clock.json"
    guard = ClockGuard(path)
    guard.record(T0)
    guard.record(T0 + timedelta(seconds=10))
    guard.flush()
    assert ClockGuard(path).last_seen == T0 + timedelta(seconds=10)


def test_unreadable_clock_state_is_not_fatal(tmp_path):
    path = tmp_path / "clock.json"
    path.write_text("{not json")
    guard = ClockGuard(path)
    assert guard.last_seen is None
    assert guard.check(T0, None).ok
    guard.record(T0)
    assert ClockGuard(path).last_seen == T0


def test_health_snapshot(tmp_path):
    thermal = tmp_path / "temp"
    thermal.write_text("48312\n")
    started = time.monotonic() - 90
    status = collect(now=T0, started_monotonic=started, trust_version=7,
                     trust_issued_at=T0 - timedelta(hours=1), backlog=3, clock="behind_bundle",
                     fps=14.96, thermal_path=thermal)
    assert status["state"] == "online"
    assert status["trust_version"] == 7 and status["trust_age_s"] == 3600
    assert status["backlog"] == 3 and status["clock"] == "behind_bundle"
    assert status["fps"] == 15.0 and status["temperature_c"] == 48.3
    assert 90 <= status["uptime_s"] <= int(time.monotonic() - started)  # however long collect() took
    assert status["ts"] == "2026-11-25T10:00:00Z"
    assert set(status) == {"state", "software", "trust_version", "trust_age_s", "backlog", "clock",
                           "fps", "temperature_c", "uptime_s", "ts"}
    assert "uptime_s" not in stable_part(status) and stable_part(status)["backlog"] == 3


def test_no_thermal_zone_gives_none(tmp_path):
    assert cpu_temperature(tmp_path / "absent") is None
    (tmp_path / "junk").write_text("hot")
    assert cpu_temperature(tmp_path / "junk") is None
