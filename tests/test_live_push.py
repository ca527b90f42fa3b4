"""Live pages pushed by PostgreSQL (NOTIFY after each committed batch, one LISTEN per web process),
and a web process that lost its listening connection still updating its pages by polling."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboard.store import StatusUpdate
from dashboard.store.pgnotify import CHANNEL, ChangeFeed
from dashboard.store.postgres import PostgresStore
from tests.support.dashboard_web import Seeded, login, make_app, seeded  # noqa: F401 - `seeded` is a fixture, used by name

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def pg_seeded(seeded: Seeded) -> Seeded:  # the imported fixture
    if not seeded.target.startswith("postgres"):
        pytest.skip("pushed changes are PostgreSQL's (SQLite's live pages read its change marker)")
    return seeded


def terminate(seeded: Seeded, backend_pid: int | None) -> None:
    """End a server process of the seeded PostgreSQL store's database, as an operator would."""
    assert isinstance(seeded.store, PostgresStore)
    seeded.store._conn().execute("SELECT pg_terminate_backend(?)", (backend_pid,))


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_committed_batch_announces_its_marker_and_checkpoints_only(pg_seeded: Seeded) -> None:
    with psycopg.connect(pg_seeded.target, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        before = pg_seeded.store.change_marker()
        pg_seeded.events("u-ic7-1", "IC7", [("red", "revoked"), ("green", "complete_series")])
        pg_seeded.store.record_status("u-hn-1", StatusUpdate("offline"), pg_seeded.now)
        notes = [json.loads(n.payload) for n in conn.notifies(timeout=5.0, stop_after=2)]
    assert notes == [{"m": before + 2, "c": ["IC7"]}, {"m": before + 3, "c": ["HN-GIA"]}]
    # A redelivered batch changes nothing, so it announces nothing.
    with psycopg.connect(pg_seeded.target, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        pg_seeded.seq -= 2
        assert pg_seeded.events("u-ic7-1", "IC7", [("red", "revoked"), ("green", "complete_series")]) == 0
        assert list(conn.notifies(timeout=1.0)) == []


def test_the_feed_wakes_only_the_streams_whose_checkpoints_changed(pg_seeded: Seeded) -> None:
    feed = ChangeFeed(pg_seeded.target, "test")
    try:
        assert feed.listening and feed.problem is None
        lao_cai, ha_noi, everything = feed.subscribe(["IC7", "XSS1"]), feed.subscribe(["HN-GIA"]), feed.subscribe(None)
        marker = feed.marker
        pg_seeded.events("u-ic7-1", "IC7", [("green", "complete_series")])
        assert lao_cai.wait(10.0) and everything.wait(10.0)
        assert not ha_noi.wait(0.5)
        assert feed.marker == marker + 1
    finally:
        feed.close()


def read_updates(app: Any, path: str, action: tuple[float, Callable[[], object]], count: int) -> list[dict[str, Any]]:
    """Open a live stream as the admin, run `action` (delay, fn) meanwhile, read `count` updates."""
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    resp = client.get(path, buffered=False)
    assert resp.status_code == 200
    timer = threading.Timer(*action)
    timer.start()
    updates: list[dict[str, Any]] = []
    buffer = ""
    try:
        for chunk in resp.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                if fields.get("event") == "update":
                    updates.append(json.loads(fields["data"]))
            if len(updates) >= count:
                break
    finally:
        resp.close()
        timer.join(5)
    return updates


def health(client: Any) -> dict[str, Any]:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    return resp.get_json()["live_updates"]


def test_a_web_process_that_lost_its_listening_connection_still_updates_its_pages(
        pg_seeded: Seeded, tmp_path: Path) -> None:
    # No periodic re-rendering in this test: an update can only come from noticing the change.
    app = make_app(pg_seeded, tmp_path / "instance", CHOT_STREAM_MAX_S=30.0, CHOT_STREAM_POLL_S=0.1,
                   CHOT_STREAM_REFRESH_S=600.0)
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    assert health(client) == {"mode": "push", "detail": None}
    feed = app.extensions["chot_shared_store"].change_feed()
    feed.retry_s = 60.0  # stay without it for the whole test
    # The listening connection dies (a server restart, a proxy's idle cut, an operator's kill).
    terminate(pg_seeded, feed.backend_pid)
    assert wait_for(lambda: health(client)["mode"] == "poll")
    said = health(client)
    assert "no listening connection" in said["detail"] and "retrying every 60 s" in said["detail"]
    # ... and its live page still follows the store, by polling.
    opened = time.monotonic()
    updates = read_updates(app, "/stream/overview",
                           (1.0, lambda: pg_seeded.events("u-ic7-1", "IC7", [("red", "revoked")])), 2)
    assert time.monotonic() - opened < 20.0
    assert 'data-test-id="today-total">15<' in updates[0]["html"]
    assert 'data-test-id="today-total">16<' in updates[1]["html"]
    assert not feed.listening


def test_the_feed_listens_again_once_the_database_is_back(pg_seeded: Seeded) -> None:
    feed = ChangeFeed(pg_seeded.target, "test", retry_s=0.2)
    try:
        sub = feed.subscribe(["HN-GIA"])
        first = feed.backend_pid
        terminate(pg_seeded, first)
        assert sub.wait(10.0)  # woken to poll
        assert wait_for(lambda: feed.listening and feed.backend_pid not in (None, first))
        sub.wait(0.0)
        pg_seeded.events("u-hn-1", "HN-GIA", [("green", "complete_series")])
        assert sub.wait(10.0)
    finally:
        feed.close()


def test_health_says_how_live_pages_learn_of_changes_on_each_backend(seeded: Seeded, tmp_path: Path) -> None:
    client = make_app(seeded, tmp_path / "instance").test_client()
    assert client.get("/healthz").status_code == 401
    assert login(client, "sup_lc").status_code == 302
    assert client.get("/healthz").status_code == 403
    assert login(client, "admin").status_code == 302
    said = health(client)
    if seeded.target.startswith("postgres"):
        assert said == {"mode": "push", "detail": None}
    else:
        assert said["mode"] == "poll" and "SQLite" in said["detail"]


def test_a_checkpoint_page_is_pushed_its_own_checkpoints_changes(pg_seeded: Seeded, tmp_path: Path) -> None:
    # No periodic re-rendering and no polling (the feed listens): only a push can bring the update.
    app = make_app(pg_seeded, tmp_path / "instance", CHOT_STREAM_MAX_S=30.0, CHOT_STREAM_REFRESH_S=600.0)
    opened = time.monotonic()
    updates = read_updates(app, "/stream/checkpoint/IC7",
                           (1.0, lambda: pg_seeded.events("u-ic7-1", "IC7", [("red", "revoked")] * 3)), 2)
    assert time.monotonic() - opened < 20.0
    assert updates[0]["html"] != updates[1]["html"]
    assert app.extensions["chot_shared_store"].change_feed().listening
