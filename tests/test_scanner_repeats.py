"""A certificate shown twice at one unit is flagged on the officer screen, from keyed hashes only."""

from __future__ import annotations

import datetime as dt

from scanner.pipeline import Judge
from scanner.repeats import RepeatLog
from scanner.screen.state import ScreenState


def test_repeat_log_window_and_bound() -> None:
    log = RepeatLog(window=dt.timedelta(hours=1), max_entries=3)
    t0 = dt.datetime(2021, 9, 20, 7, 0, tzinfo=dt.timezone.utc)
    assert log.note("a", t0) is None
    assert log.note("a", t0 + dt.timedelta(minutes=5)) == t0
    assert log.note("a", t0 + dt.timedelta(hours=3)) is None  # past the window: a new day at the gate
    for h in ("b", "c", "d"):
        log.note(h, t0 + dt.timedelta(hours=3))
    assert len(log) == 3  # bounded: the oldest went
    assert log.note(None, t0) is None


def test_screen_flags_second_scan_of_same_certificate(ministry) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    judge = Judge("vn-2021")
    store = ministry.trust_store()
    issued = ministry.issue_vaccination(doses=[(2, 2, (now - dt.timedelta(days=30)).date(), "pfizer")], now=now)
    other = ministry.issue_vaccination(doses=[(2, 2, (now - dt.timedelta(days=30)).date(), "pfizer")], now=now)
    from verifier import VerifyOptions, verify
    from verifier.policy import builtin_policy

    options = VerifyOptions(uci_key=judge.uci_key)
    first = verify(issued.hc1, store, now, builtin_policy(), options)
    again = verify(issued.hc1, store, now, builtin_policy(), options)
    different = verify(other.hc1, store, now, builtin_policy(), options)
    assert first.uci_hash and first.uci_hash == again.uci_hash != different.uci_hash
    assert issued.uci not in first.uci_hash  # a keyed hash, not the identifier

    screen = ScreenState()
    screen.show(first)
    assert not screen.snapshot()["verdict"].get("repeat")
    screen.show(different)
    assert not screen.snapshot()["verdict"].get("repeat")
    screen.show(again)
    view = screen.snapshot()["verdict"]
    assert view.get("repeat") is True
    assert any(line["en"] == "Already scanned here at" for line in view["lines"])


def test_each_unit_process_has_its_own_key() -> None:
    assert Judge("vn-2021").uci_key != Judge("vn-2021").uci_key
