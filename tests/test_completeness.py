"""Completeness of counts: which units may still hold verdicts of a period, from the registry.

Built from the contract (a unit's outbox holds every verdict not yet acknowledged; its status
says how many; its last will says offline), not from the sample data: a count is final only
once its period is over and every unit in scope has said, online, that its outbox is empty.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboard.completeness import as_dict, assess
from dashboard.scope import Scope
from dashboard.store import Device, Event, SqliteStore, StatusUpdate, open_store
from dashboard.web.data.completeness_text import describe

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 25, 7, 5, tzinfo=timezone.utc)  # 14:05 in Hà Nội
DAY_START = datetime(2026, 11, 24, 17, 0, tzinfo=timezone.utc)  # local midnight of the 25th
DAY_END = DAY_START + timedelta(days=1)
CREATED = datetime(2026, 11, 1, tzinfo=timezone.utc)


def unit(device: str, state: str = "online", backlog: int | None = 0, contact: datetime | None = NOW,
         complete_at: datetime | None = None) -> Device:
    return Device(device, "IC7", "080", "25", "IC7 Nội Bài–Lào Cai", CREATED, state=state, last_seen=contact,
                  status_at=contact, backlog=backlog, complete_at=complete_at)


def healthy(n: int) -> list[Device]:
    return [unit(f"u{i:02d}", complete_at=NOW) for i in range(n)]


def test_all_units_caught_up_is_complete_to_now_but_not_final_while_the_day_runs() -> None:
    c = assess(healthy(38), DAY_START, DAY_END, NOW)
    assert (c.units, c.complete_units, c.lagging, c.final) == (38, 38, (), False)
    assert c.complete_to == NOW
    assert describe(c, TZ, "vi") == "Đầy đủ đến 14:05 cho 38/38 thiết bị (chưa hết kỳ, số liệu còn tăng)."


def test_an_offline_unit_with_a_backlog_is_named_with_its_waiting_verdicts() -> None:
    off_at = datetime(2026, 11, 25, 6, 40, tzinfo=timezone.utc)  # 13:40 local
    lane1 = unit("ic7-lane1", state="offline", backlog=12, contact=off_at, complete_at=off_at - timedelta(minutes=30))
    c = assess([*healthy(37), lane1], DAY_START, DAY_END, NOW)
    assert (c.units, c.complete_units, c.pending, c.final) == (38, 37, 12, False)
    assert [u.device for u in c.lagging] == ["ic7-lane1"] and c.lagging[0].state == "offline"
    assert c.all_complete_to == off_at - timedelta(minutes=30)
    assert describe(c, TZ, "vi") == ("Đầy đủ đến 14:05 cho 37/38 thiết bị; ic7-lane1 mất kết nối từ 13:40,"
                                     " còn 12 kết quả chờ gửi.")
    assert describe(c, TZ, "en") == "Complete to 14:05 for 37 of 38 units; ic7-lane1 offline since 13:40 with 12 verdicts waiting."
    assert as_dict(c)["lagging"][0]["pending"] == 12


def test_a_past_day_is_final_only_when_no_unit_can_still_hold_its_verdicts() -> None:
    yesterday = (DAY_START - timedelta(days=1), DAY_START)
    # Went offline this morning after having said its outbox was empty: yesterday is whole.
    went_off = DAY_START + timedelta(hours=8)
    c = assess([*healthy(3), unit("lane1", "offline", 0, went_off, complete_at=went_off)], *yesterday, NOW)
    assert c.final and c.lagging == ()
    assert describe(c, TZ, "vi") == "Số liệu cuối cùng: cả 4 thiết bị đã gửi đủ."
    # Offline since before midnight with verdicts queued: yesterday is not final.
    late = DAY_START - timedelta(hours=2)
    c = assess([*healthy(3), unit("lane1", "offline", 5, late, complete_at=late - timedelta(hours=1))], *yesterday, NOW)
    assert not c.final and [u.device for u in c.lagging] == ["lane1"]


def test_draining_then_empty_makes_the_count_complete_again() -> None:
    sending = unit("lane1", "online", backlog=40, complete_at=NOW - timedelta(hours=1))
    c = assess([*healthy(2), sending], DAY_START, DAY_END, NOW)
    assert c.lagging[0].state == "sending" and c.pending == 40
    assert "lane1 đang gửi bù, còn 40 kết quả chờ gửi" in describe(c, TZ, "vi")
    drained = unit("lane1", "online", backlog=0, complete_at=NOW)
    c = assess([*healthy(2), drained], DAY_START, DAY_END, NOW)
    assert c.complete_units == 3 and c.lagging == ()


def test_a_verdict_in_flight_within_the_reporting_interval_is_normal_running_not_a_lag() -> None:
    # Online, heard from now, said "1 waiting" but its outbox was empty 20 s ago (interval 60 s).
    busy = unit("lane1", "online", backlog=1, complete_at=NOW - timedelta(seconds=20))
    c = assess([*healthy(3), busy], DAY_START, DAY_END, NOW, fresh_s=90, interval_s=60)
    assert (c.units, c.complete_units, c.lagging, c.in_flight, c.final) == (4, 4, (), 1, False)
    assert c.complete_to == NOW - timedelta(seconds=20)  # honest: the in-flight unit bounds the time
    text = describe(c, TZ, "vi")
    assert text == "Đầy đủ đến 14:04 cho 4/4 thiết bị (chưa hết kỳ, số liệu còn tăng)."
    assert "gửi bù" not in text and "chờ gửi" not in text
    assert as_dict(c)["in_flight"] == 1


def test_an_outbox_not_drained_within_the_interval_is_a_lag_again() -> None:
    slow = unit("lane1", "online", backlog=3, complete_at=NOW - timedelta(seconds=61))
    c = assess([*healthy(3), slow], DAY_START, DAY_END, NOW, fresh_s=90, interval_s=60)
    assert c.complete_units == 3 and [u.state for u in c.lagging] == ["sending"] and c.in_flight == 0
    # In flight needs the unit online and heard from: a cut link is not "in flight".
    cut = unit("lane1", "offline", backlog=1, contact=NOW - timedelta(seconds=5), complete_at=NOW - timedelta(seconds=10))
    assert [u.state for u in assess([cut], DAY_START, DAY_END, NOW, 90, 60).lagging] == ["offline"]
    quiet = unit("lane1", "online", backlog=1, contact=NOW - timedelta(seconds=200), complete_at=NOW - timedelta(seconds=30))
    assert [u.state for u in assess([quiet], DAY_START, DAY_END, NOW, 90, 60).lagging] == ["quiet"]


def test_the_line_does_not_flip_between_reloads_while_units_send_and_drain() -> None:
    # What a page sees on successive reloads of a running checkpoint: each unit's last status
    # says 0 or 1 waiting, its outbox empty a few seconds ago. Every reading: n/n, no warning.
    seen = set()
    for step in range(12):
        devices = [unit(f"u{i}", "online", backlog=(step + i) % 2,
                        complete_at=NOW - timedelta(seconds=(step * 7 + i * 11) % 55)) for i in range(4)]
        c = assess(devices, DAY_START, DAY_END, NOW, fresh_s=90, interval_s=60)
        seen.add((c.complete_units, c.units, bool(c.lagging), "⚠" if c.lagging else "◔"))
    assert seen == {(4, 4, False, "◔")}


def test_a_past_period_is_not_final_while_its_last_verdicts_are_in_flight() -> None:
    just_ended = DAY_START + timedelta(seconds=30)  # now: 30 s after midnight
    busy = unit("lane1", "online", backlog=1, contact=just_ended, complete_at=DAY_START - timedelta(seconds=10))
    c = assess([busy], DAY_START - timedelta(days=1), DAY_START, just_ended, 90, 60)
    assert not c.final and c.lagging == () and c.in_flight == 1
    drained = unit("lane1", "online", backlog=0, contact=just_ended, complete_at=just_ended)
    assert assess([drained], DAY_START - timedelta(days=1), DAY_START, just_ended, 90, 60).final


def test_a_unit_silent_beyond_the_alarm_or_never_heard_from_is_not_counted_complete() -> None:
    silent = unit("quiet", "online", 0, NOW - timedelta(minutes=20), complete_at=NOW - timedelta(minutes=20))
    never = unit("new", "unknown", None, None)
    c = assess([*healthy(1), silent, never], DAY_START, DAY_END, NOW, fresh_s=300)
    assert {u.device: u.state for u in c.lagging} == {"quiet": "quiet", "new": "never_seen"}
    assert "new chưa từng báo cáo" in describe(c, TZ, "vi")
    # A unit registered after the period cannot hold its verdicts.
    later = Device("later", "IC7", "080", "25", "IC7", DAY_START + timedelta(hours=1))
    yesterday = assess([later], DAY_START - timedelta(days=1), DAY_START, NOW)
    assert yesterday.units == 0


def test_the_store_keeps_last_seq_and_the_last_time_the_outbox_was_empty(store_target: str) -> None:
    store = open_store(store_target)  # on each backend
    try:
        store.upsert_checkpoint("IC7", "IC7 Nội Bài–Lào Cai", "080", "25")
        store.add_device("lane1", "IC7")
        t0 = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)
        store.record_status("lane1", StatusUpdate("online", backlog=0), t0)
        assert store.get_device("lane1").complete_at == t0
        batch = [Event("lane1", "IC7", seq, t0, "green", "complete_series", "vn-2021", 1, t0) for seq in (5, 9, 7)]
        store.record_events(batch)
        assert store.get_device("lane1").last_seq == 9
        store.record_events(batch[:1])  # a redelivery of an older seq does not lower it
        assert store.get_device("lane1").last_seq == 9
        store.record_status("lane1", StatusUpdate("online", backlog=12), t0 + timedelta(minutes=5))
        store.record_status("lane1", StatusUpdate("offline"), t0 + timedelta(minutes=6))
        d = store.get_device("lane1")
        assert (d.state, d.backlog, d.complete_at) == ("offline", 12, t0)  # the will keeps the last backlog
        store.record_status("lane1", StatusUpdate("online", backlog=0), t0 + timedelta(minutes=9))
        assert store.get_device("lane1").complete_at == t0 + timedelta(minutes=9)
        assert [x.id for x in store.list_devices(Scope.of(provinces=["25"]))] == ["lane1"]
    finally:
        store.close()


@pytest.mark.parametrize("language", ["vi", "en"])
def test_no_units_says_so(language: str) -> None:
    c = assess([], DAY_START, DAY_END, NOW)
    assert c.units == 0 and not c.final
    assert describe(c, TZ, language) in ("Chưa có thiết bị nào trong phạm vi.", "No unit in scope yet.")


def test_past_a_few_lagging_units_the_rest_are_counted_not_named() -> None:
    off = NOW - timedelta(minutes=30)
    lagging = [unit(f"lane{i:02d}", "offline", i, off, complete_at=off) for i in range(1, 9)]
    text = describe(assess([*healthy(2), *lagging], DAY_START, DAY_END, NOW), TZ, "vi")
    assert text.startswith("Đầy đủ đến 14:05 cho 2/10 thiết bị; lane08 mất kết nối từ 13:35, còn 8 kết quả chờ gửi;")
    assert "lane04" in text and "lane03" not in text
    assert text.endswith("; và 3 thiết bị khác (còn 6 kết quả chờ gửi).")


def test_an_older_store_gains_last_seq_and_the_audit_log_on_upgrade(tmp_path: Path) -> None:
    import sqlite3

    import sqlite_utils

    from dashboard.store import MIGRATIONS

    path = tmp_path / "chot.db"
    db = sqlite_utils.Database(path)
    db["schema_version"].create({"version": int, "applied_at": int}, pk="version")
    for version, migration in enumerate(MIGRATIONS[:4], start=1):  # up to the officers' schema 4
        migration(db)
        db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", [version])
    db.conn.commit()
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO checkpoints (id, name, district, province) VALUES ('IC7', 'IC7', '080', '25')")
    conn.execute("INSERT INTO devices (id, checkpoint, created_at, state) VALUES ('lane1', 'IC7', 0, 'online')")
    for seq in (3, 11, 4):
        conn.execute("INSERT INTO events (device, seq, checkpoint, ts, received_at, minute, result, reason, policy)"
                     " VALUES ('lane1', ?, 'IC7', 0, 0, 0, 'green', 'complete_series', 'vn-2021')", (seq,))
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.schema_version() == len(MIGRATIONS) == 6
        d = store.get_device("lane1")
        assert (d.last_seq, d.complete_at) == (11, None)  # never said its outbox was empty: not complete
        entry = store.record_audit("admin", "device_added", "lane1", "25", "checkpoint IC7")
        assert store.audit_log(Scope.of(provinces=["25"])) == [entry]
        assert store.audit_log(Scope.of(provinces=["01"])) == [] and store.audit_log(Scope.all()) == [entry]
        with pytest.raises(Exception, match="audit action must be one of"):
            store.record_audit("admin", "drop_tables", "x")
    finally:
        store.close()
