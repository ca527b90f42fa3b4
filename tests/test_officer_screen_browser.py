"""The officer deciding, in Debian's chromium, on a whole unit reporting to the real central side.

A real `Unit` (screen, outbox, MQTT link) runs against Mosquitto from the shipped config and the
ingest; the dashboard signs and publishes the checkpoint's roster, the ministry's bundle lists the
dashboard's roster key. The camera is the scripted camera's phone renderings (the Pi camera is the
only hardware here), with the test choosing which phone is held up and when it is taken away;
the unit's own decoder reads the frames, so each verdict stays until the test moves on.
The officer signs in with the on-screen keypad, decides on a red and on a yellow (a double tap is
one decision), records a manual check, and the counts appear on the dashboard's overview.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from dashboard import officers
from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from dashboard.store import SqliteStore
from dashboard.web import create_app
from scanner.camera import SourceEnded
from scanner.camera.replay import ScriptedCamera
from scanner.config import parse_unit_config
from scanner.unit import Unit
from tests.support.central import start_central
from tests.support.dashboard_web import ACCOUNTS, LiveServer, password_hash
from tests.test_scanner_report_support import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(240)]
SCREENSHOTS = Path(os.environ.get("CHOT_SCREENSHOTS") or tempfile.mkdtemp(prefix="chot-screenshots-"))
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
PIN = "482159"
WAIT_MS = 30_000  # expect()s retry until then: a hang guard on a loaded machine, not a deadline


class HeldUpCamera(ScriptedCamera):
    """The scripted camera's rendered phones, but the test holds one up (by index) or none."""

    def __init__(self, payloads: list[str]) -> None:
        super().__init__(payloads, 640, 480, fps=10, loop=True, difficulty="easy")
        self.held: int | None = None

    def read(self) -> np.ndarray:
        if self._stopped.is_set():
            raise SourceEnded("held-up")
        self._tick += 1
        frame = self._empty if self.held is None else self._frames[self.held][self._tick % self.variants]
        self._pacer.wait()
        assert frame is not None
        return frame


@pytest.fixture
def world(tmp_path: Path, mosquitto_factory: Callable[..., Any], ministry: Any) -> Iterator[dict[str, Any]]:
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(ministry.anchor_pem)
    central = start_central(tmp_path, mosquitto_factory, anchor_file=str(anchor))
    creds = central.add_device("ic7-lane1", "IC7", "080", "10", "IC7 Nội Bài–Lào Cai")
    for username, (password, role, scope) in ACCOUNTS.items():
        central.store.create_user(username, password_hash(password), role, scope)
    officers.add_officer(central.store, central.config, "IC7", "CA-0142", "Nguyễn Văn An", "police", PIN)
    ingest = MqttIngest(SqliteStore(central.config.database), central.config)
    ingest.start()
    unit_dir = tmp_path / "unit"
    unit_dir.mkdir()
    (unit_dir / "anchor.pem").write_bytes(ministry.anchor_pem)
    (unit_dir / "bundle.json").write_bytes(ministry.bundle(
        version=3, issued_at=NOW - dt.timedelta(hours=1), roster_keys=[officers.public_pem(central.config)]))
    samples = {s.name: s for s in ministry.samples(NOW)}
    (unit_dir / "frames.txt").write_text(samples["complete_series"].payload + "\n")
    config = parse_unit_config({
        "unit": {"device_id": "ic7-lane1", "checkpoint": "IC7", "policy": "vn-2021"},
        "camera": {"backend": "scripted", "source": "frames.txt", "fps": 10, "width": 320, "height": 240,
                   "loop": True, "hold_frames": 5, "gap_frames": 0},
        "debounce": {"gone_frames": 2, "gone_seconds": 0.3},
        "trust": {"anchor_file": "anchor.pem", "cache_dir": "trust", "bundle_file": "bundle.json"},
        "storage": {"data_dir": "data"},
        "screen": {"enabled": True, "port": 0, "verdict_seconds": 30},
        "mqtt": {"host": "127.0.0.1", "port": central.port, "password": creds.password,
                 "password_credential": "none", "password_env": "CHOT_TEST_NO_SUCH_VAR", "keepalive": 10},
    }, unit_dir)
    names = ["recent_dose", "one_dose"]  # the phones the officer is shown
    camera = HeldUpCamera([samples[n].payload for n in names])
    unit = Unit(config, camera=camera)
    stop = threading.Event()
    runner = threading.Thread(target=unit.run, args=(stop,), name="test-unit")
    runner.start()
    app = create_app(central.config, {"SECRET_KEY": "browser-test-key", "CHOT_STREAM_MAX_S": 30.0})
    server = LiveServer(app)
    try:
        wait_until(lambda: unit.screen is not None and unit.roster is not None and unit.roster.current is not None,
                   30, "the unit to hear its checkpoint's roster")
        yield {"central": central, "unit": unit, "camera": camera, "names": names, "server": server}
    finally:
        stop.set()
        runner.join(30)
        server.stop()
        ingest.stop()
        ingest.store.close()
        central.store.close()


def by_id(page: Any, test_id: str) -> Any:
    return page.locator(f'[data-test-id="{test_id}"]')


def show(world: dict[str, Any], page: Any, sample: str, headline: str) -> None:
    """Hold a certificate up to the camera until its verdict is on screen, then take it away."""
    unit, camera = world["unit"], world["camera"]
    scans = unit.pipeline.stats.scans
    camera.held = world["names"].index(sample)
    wait_until(lambda: unit.pipeline.stats.scans > scans, 60, f"the unit to scan {sample}")
    camera.held = None
    by_id(page, "headline").filter(has_text=headline).wait_for()


def test_officer_signs_in_decides_and_the_dashboard_counts_it(world: dict[str, Any], page: Any) -> None:
    unit = world["unit"]
    page.goto(unit.screen.url)
    by_id(page, "desk").wait_for()
    expect(by_id(page, "desk-officer")).to_contain_text("Chưa có cán bộ đăng nhập", timeout=WAIT_MS)

    # Sign in: a wrong PIN is refused on screen, the right one (typed on the keypad) is taken.
    by_id(page, "signin-open").click()
    by_id(page, "officer-CA-0142").click()
    by_id(page, "pin").fill("000000")
    by_id(page, "pin").press("Enter")
    by_id(page, "desk-message").filter(has_text="Sai cán bộ hoặc mã PIN").wait_for()
    for digit in PIN:
        by_id(page, f"key-{digit}").click()
    by_id(page, "key-ok").click()
    by_id(page, "desk-officer").filter(has_text="Nguyễn Văn An").wait_for()

    # A red for a dose given too recently: the next step names the ministry's channel (signed policy).
    show(world, page, "recent_dose", "KHÔNG HỢP LỆ")
    correction = by_id(page, "correction")
    expect(correction).to_contain_text("1900 9095", timeout=WAIT_MS)
    expect(correction).to_contain_text("tiemchungcovid19.gov.vn", timeout=WAIT_MS)
    choice = by_id(page, "choice-paper_proof")
    choice.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "officer-deciding.png"))
    choice.dblclick()  # a double tap
    by_id(page, "desk-message").filter(has_text="Đã ghi").wait_for()
    # (the syllables of one word are joined by a no-break space: protocol/words.py)
    expect(by_id(page, "headline")).to_have_text("KHÔNG\xa0HỢP\xa0LỆ", timeout=WAIT_MS)  # stayed up while deciding
    expect(by_id(page, "choice-paper_proof")).to_have_count(0, timeout=WAIT_MS)

    # A yellow (one dose of two): turned back, chosen with the keyboard.
    show(world, page, "one_dose", "CẦN KIỂM TRA")
    by_id(page, "choice-no_proof").wait_for()
    labels = page.locator(".desk .choices button").all_inner_texts()  # read at once, not one by one
    page.keyboard.press(str(next(i for i, text in enumerate(labels, 1) if "không có giấy tờ" in text.lower())))
    expect(by_id(page, "choice-no_proof")).to_have_count(0, timeout=WAIT_MS)  # the turn-back is recorded

    # A person with no phone: a manual check on the paper certificate.
    by_id(page, "manual-open").click()
    by_id(page, "choice-paper_proof").click()
    by_id(page, "desk-message").filter(has_text="Đã ghi").wait_for()

    # Exactly one decision per verdict reached the store, beside the verdicts.
    central = world["central"]
    day = (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1))
    wait_until(lambda: central.store.totals(Scope.all(), *day).manual == 1, 30, "the decisions to be stored")
    totals = central.store.totals(Scope.all(), *day)
    assert (totals.red, totals.yellow, totals.decision, totals.manual) == (1, 1, 2, 1)
    rows = {(r.outcome, r.reason, r.follows_result) for r in central.store.decision_counts(Scope.all(), *day)}
    assert rows == {("let_through", "paper_proof", "red"), ("turned_back", "no_proof", "yellow"),
                    ("let_through", "paper_proof", "")}

    # The dashboard shows them as their own counts.
    page.goto(f"{world['server'].url}/login")
    by_id(page, "login-username").fill("admin")
    by_id(page, "login-password").fill(ACCOUNTS["admin"][0])
    by_id(page, "login-submit").click()
    page.wait_for_selector("[data-test-id=current-user]")
    by_id(page, "today-decisions").filter(has_text="2").wait_for()
    expect(by_id(page, "today-manual")).to_have_text("1", timeout=WAIT_MS)
    by_id(page, "officer-IC7-CA-0142").wait_for()
    by_id(page, "decisions-gap").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-decisions.png"), full_page=True)
