"""The live stream (server-sent events): live, scoped, and closed to those without access.

How fast an update reaches a browser is bench/ingest.py's figure (publish -> SSE p95); here a
stream is read until the events it must send have come, and only a hang is bounded (the
stream's own time limit and the test timeout).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.store import StatusUpdate
from tests.support.dashboard_web import PINNED_NOW, Seeded, login, seeded, make_app  # noqa: F401

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app(seeded: Seeded, tmp_path: Path) -> Any:
    # Long enough never to end a stream before its events on a loaded machine: a hang guard.
    return make_app(seeded, tmp_path / "instance", CHOT_STREAM_MAX_S=30.0)


def read_stream(app: Any, username: str, path: str,
                actions: tuple[tuple[float, Callable[[], object]], ...] = (),
                until: int | None = None) -> list[tuple[str, dict[str, Any], float]]:
    """Open a stream as `username`, run `actions` (delay, fn) meanwhile, read it until `until`
    events have come (or until it ends).

    Returns (event, data, arrival) for every event; arrival in seconds after the stream opened.
    The stream is read in this thread (its request context lives here); actions run on timers.
    """
    client = app.test_client()
    assert login(client, username).status_code == 302
    resp = client.get(path, buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    opened = time.monotonic()
    timers = [threading.Timer(delay, fn) for delay, fn in actions]
    for timer in timers:
        timer.start()
    events: list[tuple[str, dict[str, Any], float]] = []
    buffer = ""
    try:
        for chunk in resp.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                if "event" in fields:
                    events.append((fields["event"], json.loads(fields["data"]), time.monotonic() - opened))
            if until is not None and len(events) >= until:
                break
    finally:
        resp.close()
        for timer in timers:
            timer.join(5)
    return events


def test_overview_stream_sends_an_update_after_a_stored_event(app: Any, seeded: Seeded) -> None:
    events = read_stream(app, "admin", "/stream/overview",
                         ((1.0, lambda: seeded.events("u-ic7-1", "IC7", [("red", "revoked")])),), until=2)
    assert [e[0] for e in events] == ["update", "update"]
    assert 'data-test-id="today-total">15<' in events[0][1]["html"]
    assert 'data-test-id="today-total">16<' in events[1][1]["html"]
    assert events[1][2] >= 1.0  # sent because of the event, not before it


def test_a_scoped_stream_ignores_other_provinces(app: Any, seeded: Seeded) -> None:
    # Events in Hà Nội change the store (and its marker) but nothing this supervisor may see.
    events = read_stream(app, "sup_lc", "/stream/overview", (
        (0.5, lambda: seeded.events("u-hn-1", "HN-GIA", [("red", "revoked")] * 3)),
        (1.5, lambda: seeded.events("u-ic7-1", "IC7", [("green", "complete_series")])),
    ), until=2)
    assert len(events) == 2  # had the Hà Nội events sent one, it would be the second, at 10
    assert 'data-test-id="today-total">10<' in events[0][1]["html"]
    assert 'data-test-id="today-total">11<' in events[1][1]["html"]
    assert events[1][2] >= 1.5
    for _, data, _ in events:
        assert "Gia Lâm" not in data["html"] and "revoked" not in data["html"]


def test_devices_stream_shows_a_unit_going_offline(app: Any, seeded: Seeded) -> None:
    events = read_stream(app, "sup_lc", "/stream/devices", (
        (0.5, lambda: seeded.store.record_status("u-ic7-1", StatusUpdate("offline"),
                                                 PINNED_NOW - timedelta(minutes=10))),
    ), until=2)
    assert 'data-test-id="device-state-u-ic7-1" data-state="online"' in events[0][1]["html"]
    assert 'data-test-id="device-state-u-ic7-1" data-state="offline"' in events[-1][1]["html"]
    assert 'data-test-id="alarm-offline-u-ic7-1"' in events[-1][1]["html"]


def test_checkpoint_stream_is_forbidden_outside_the_scope_before_any_byte(app: Any) -> None:
    client = app.test_client()
    login(client, "sup_hn")
    resp = client.get("/stream/checkpoint/IC7", buffered=False)
    assert resp.status_code == 403 and resp.is_json
    assert "IC7 Nội Bài" not in resp.get_data(as_text=True)


def test_stream_ends_after_its_time_limit_and_sends_nothing_unchanged(app: Any) -> None:
    app.config["CHOT_STREAM_MAX_S"] = 0.5
    events = read_stream(app, "admin", "/stream/devices")  # returns only because the stream ends
    assert len(events) == 1  # the first rendering, then nothing changed


def test_render_cache_shares_one_rendering_between_equal_viewers() -> None:
    from dashboard.web.views.stream import RenderCache

    cache = RenderCache(max_entries=2)
    calls: list[str] = []

    def render(text: str, pause: float = 0.0) -> Callable[[], str]:
        def run() -> str:
            calls.append(text)
            time.sleep(pause)
            return text
        return run

    threads = [threading.Thread(target=cache.get, args=(("overview", "sup"), 5, 10.0, render("a", 0.2)))
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert calls == ["a"]  # five streams at once, one rendering
    assert cache.get(("overview", "sup"), 6, 10.0, render("b")) == "b"  # the store moved on
    assert cache.get(("overview", "sup"), 6, 0.0, render("c")) == "c"  # too old: redone
    assert cache.get(("overview", "other-scope"), 6, 10.0, render("d")) == "d"  # another viewer
    assert cache.get(("devices",), 6, 10.0, lambda: None) is None  # refusals are not kept
    assert cache.get(("x",), 6, 10.0, render("e")) == "e"
    assert cache.get(("overview", "sup"), 6, 10.0, render("f")) == "f"  # evicted (max 2 entries)
    assert calls == ["a", "b", "c", "d", "e", "f"]
