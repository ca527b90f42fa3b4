"""The dashboard in Debian's chromium: live counts and chart from a real broker and the real ingest.

Each test runs the whole central side: Mosquitto from the shipped config, the ingest, and the
web app on a threaded HTTP server, on each store backend (a SQLite file, a PostgreSQL database).
Units publish over MQTT with their
own credentials. Screenshots of the main pages go to docs/screenshots/ for the README.
"""

from __future__ import annotations

import json
import os
import tempfile
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from dashboard.devices import Credentials
from dashboard.ingest import MqttIngest
from dashboard.scope import Scope
from dashboard.store import open_store
from dashboard.web import create_app
from dashboard.web.state import close_shared_store
from tests.support.central import Central, start_central
from tests.support.dashboard_web import ACCOUNTS, LiveServer, password_hash

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(300)]  # hang guards only

# The README's pictures are refreshed with CHOT_SCREENSHOTS=docs/screenshots; by default they go to a
# scratch folder so that a test run leaves the work tree clean.
SCREENSHOTS = Path(os.environ.get("CHOT_SCREENSHOTS") or tempfile.mkdtemp(prefix="chot-screenshots-"))
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
REASONS_RED = ("signature", "cwt_expired", "revoked", "kid_unknown")

# A unit as its own process: logs in, leaves a last will, reports online (with an optional outbox
# backlog), then waits to be killed.
UNIT_SCRIPT = """
import json, sys, time
import paho.mqtt.client as mqtt
port, device, password, checkpoint = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
backlog = int(sys.argv[5]) if len(sys.argv) > 5 else 0
topic = f"chot/v1/{checkpoint}/{device}/status"
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"unit-{device}", protocol=mqtt.MQTTv311)
c.username_pw_set(device, password)
c.will_set(topic, json.dumps({"state": "offline"}), qos=1, retain=True)
c.connect("127.0.0.1", int(port), keepalive=5)
c.loop_start()
status = {"state": "online", "software": "chot 0.1.0", "trust_version": 7, "trust_age_s": 5400,
          "backlog": backlog, "clock": "ok", "fps": 15.2, "temperature_c": 48.5, "uptime_s": 60,
          "ts": "2026-11-25T00:00:00Z"}
c.publish(topic, json.dumps(status), qos=1, retain=True).wait_for_publish(10)
print("online", flush=True)
time.sleep(60)
"""


@dataclass
class Site:
    """The running central side as a browser test sees it."""

    central: Central
    server: LiveServer
    units: dict[str, Credentials]
    seq: int = 0
    console_errors: list[str] = field(default_factory=list)

    def publish(self, device: str, results: list[tuple[str, str]], minutes_ago: float = 0.0) -> None:
        """Publish verdicts as `device` over MQTT (QoS 1), each with a fresh seq."""
        creds = self.units[device]
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{device}-{self.seq}",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(device, creds.password)
        client.connect("127.0.0.1", self.central.port, keepalive=10)
        client.loop_start()
        try:
            ts = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
            for result, reason in results:
                self.seq += 1
                body = {"seq": self.seq, "ts": ts.isoformat().replace("+00:00", "Z"), "result": result,
                        "reason": reason, "policy": "vn-2021", "trust_version": 7}
                client.publish(f"chot/v1/{creds.checkpoint}/{device}/event", json.dumps(body),
                               qos=1).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()

    def wait_stored(self, count: int, timeout: float = 60.0) -> None:
        """Block until the ingest has stored `count` verdicts in all."""
        deadline = time.monotonic() + timeout
        everything = (datetime(2021, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc) + timedelta(days=1))
        while self.central.store.totals(Scope.all(), *everything).total < count:
            assert time.monotonic() < deadline, f"ingest stored fewer than {count} verdicts"
            time.sleep(0.05)

    def start_unit(self, device: str, backlog: int = 0) -> subprocess.Popen[str]:
        """Run a unit process that reports online (`backlog` verdicts waiting) with a last will saying offline."""
        creds = self.units[device]
        proc = subprocess.Popen([sys.executable, "-c", UNIT_SCRIPT, str(self.central.port), device,
                                 creds.password, creds.checkpoint, str(backlog)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "online"
        return proc


@pytest.fixture
def site(tmp_path: Path, mosquitto_factory: Callable[..., Any], ministry: Any, store_target: str) -> Iterator[Site]:
    yield from run_site(tmp_path, mosquitto_factory, ministry, offline_after_s=1, store_target=store_target)


def run_site(tmp_path: Path, mosquitto_factory: Callable[..., Any], ministry: Any,
             offline_after_s: int, store_target: str | None = None) -> Iterator[Site]:
    """The central side with three units registered and the test accounts, until the generator ends."""
    anchor = tmp_path / "anchor.pem"
    pem = ministry.anchor_pem
    anchor.write_bytes(pem if isinstance(pem, bytes) else pem.encode())
    central = start_central(tmp_path, mosquitto_factory, store_target=store_target,
                            alarms={"offline_after_s": offline_after_s},
                            anchor_file=str(anchor))
    units = {
        "lc-ic7-01": central.add_device("lc-ic7-01", "IC7", "080", "10", "IC7 Nội Bài–Lào Cai"),
        "lc-ic7-02": central.add_device("lc-ic7-02", "IC7", "080", "10", "IC7 Nội Bài–Lào Cai"),
        "hn-gl-01": central.add_device("hn-gl-01", "HN-GL", "004", "01", "Chốt Gia Lâm"),
    }
    for username, (password, role, scope) in ACCOUNTS.items():
        central.store.create_user(username, password_hash(password), role, scope)
    ingest = MqttIngest(open_store(central.target), central.config)
    ingest.start()
    app = create_app(central.config, {"SECRET_KEY": "browser-test-key", "CHOT_STREAM_MAX_S": 30.0})
    server = LiveServer(app)
    try:
        yield Site(central, server, units)
    finally:
        server.stop()
        close_shared_store(app)
        ingest.stop()
        ingest.store.close()
        central.store.close()


def by_id(page: Any, test_id: str) -> Any:
    """Elements by their data-test-id (Playwright's get_by_test_id reads data-testid)."""
    return page.locator(f'[data-test-id="{test_id}"]')


def log_in(page: Any, site: Site, username: str) -> None:
    """Log in through the form; console errors (CSP refusals, script errors) go to site.console_errors."""
    if not getattr(page, "_chot_console", False):
        page.on("console", lambda m: site.console_errors.append(m.text) if m.type == "error" else None)
        page._chot_console = True
    page.goto(f"{site.server.url}/login")
    by_id(page, "login-username").fill(username)
    by_id(page, "login-password").fill(ACCOUNTS[username][0])
    by_id(page, "login-submit").click()
    page.wait_for_selector("[data-test-id=current-user]")


def text_of(page: Any, test_id: str) -> str:
    return by_id(page, test_id).first.inner_text().strip()


def wait_text(page: Any, test_id: str, expected: str, timeout_ms: int = 30_000) -> float:
    """Wait until the element shows `expected`; returns how long that took (seconds, for the log).

    The timeout is a hang guard only: how fast an update arrives is bench/ingest.py's figure."""
    started = time.monotonic()
    page.wait_for_function(
        "([id, want]) => { const e = document.querySelector(`[data-test-id=\"${id}\"]`);"
        " return e && e.textContent.trim() === want; }",
        arg=[test_id, expected], timeout=timeout_ms, polling=20,
    )
    return time.monotonic() - started


def test_counter_and_chart_change_live_from_the_broker(page: Any, site: Site) -> None:
    log_in(page, site, "admin")
    assert text_of(page, "today-total") == "0"
    page.wait_for_selector("[data-test-id=live-status][data-state=open]")
    page.evaluate("window.__notReloaded = true")

    site.publish("lc-ic7-01", [("green", "complete_series")] * 2 + [("red", "signature")])
    took = wait_text(page, "today-total", "3")
    print(f"publish -> browser counter: {took * 1000:.0f} ms")  # a log line, not a limit
    assert text_of(page, "today-red") == "1"
    assert by_id(page, "chart-svg").get_attribute("data-total") == "3"
    assert page.locator("[data-test-id=chart-svg] rect.bar-red").count() == 1
    assert page.evaluate("window.__notReloaded") is True  # updated in place, not reloaded

    # A fuller picture for the README's screenshot: results spread over the last two hours.
    published = 3
    for step, mix in enumerate((6, 9, 12, 8, 14)):
        site.publish("lc-ic7-02", [("green", "complete_series")] * mix + [("yellow", "partial")] * 2
                     + [("red", REASONS_RED[step % 4])], minutes_ago=25 * (step + 1))
        site.publish("hn-gl-01", [("green", "complete_series")] * (mix // 2) + [("red", "cwt_expired")],
                     minutes_ago=25 * (step + 1) + 10)
        published += mix + 3 + mix // 2 + 1
    site.wait_stored(published)
    # Near local midnight some of these fall on yesterday: the page must agree with the API.
    today = page.request.get(f"{site.server.url}/api/v1/overview").json()["today"]["total"]
    wait_text(page, "today-total", str(today))
    assert page.evaluate("window.__notReloaded") is True
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    page.goto(f"{site.server.url}/checkpoints/IC7")
    assert "IC7 Nội Bài–Lào Cai" in text_of(page, "checkpoint-name")
    before = int(text_of(page, "checkpoint-today-total").replace(".", ""))
    page.wait_for_selector("[data-test-id=live-status][data-state=open]")
    site.publish("lc-ic7-01", [("red", "revoked")])
    wait_text(page, "checkpoint-today-total", f"{before + 1:,}".replace(",", "."))
    page.screenshot(path=str(SCREENSHOTS / "checkpoint.png"), full_page=True)
    assert site.console_errors == []  # no script errors, nothing refused by the page's CSP


def test_a_unit_goes_offline_when_its_process_dies(page: Any, site: Site) -> None:
    unit = site.start_unit("lc-ic7-01")
    try:
        log_in(page, site, "sup_lc")
        page.goto(f"{site.server.url}/devices")
        page.wait_for_selector("[data-test-id=device-state-lc-ic7-01][data-state=online]", timeout=60_000)
        page.wait_for_selector("[data-test-id=live-status][data-state=open]")
        os.kill(unit.pid, signal.SIGKILL)  # no DISCONNECT: the broker sends the last will
        unit.wait(10)
        started = time.monotonic()
        page.wait_for_selector("[data-test-id=device-state-lc-ic7-01][data-state=offline]", timeout=60_000)
        print(f"unit killed -> shown offline: {(time.monotonic() - started) * 1000:.0f} ms")
        page.wait_for_selector("[data-test-id=alarm-offline-lc-ic7-01]", timeout=30_000)
        assert page.locator("[data-test-id=device-hn-gl-01]").count() == 0  # another province
        page.screenshot(path=str(SCREENSHOTS / "devices.png"), full_page=True)
        assert site.console_errors == []
    finally:
        if unit.poll() is None:
            unit.kill()
            unit.wait(10)


def test_language_switches_and_stays_with_the_user(page: Any, site: Site, browser: Any) -> None:
    log_in(page, site, "sup_lc")
    assert text_of(page, "nav-overview") == "Tổng quan"
    assert page.locator("html").get_attribute("lang") == "vi"
    site.publish("lc-ic7-01", [("green", "complete_series")] * 7 + [("yellow", "partial"), ("red", "cwt_expired")])
    wait_text(page, "today-total", "9")
    by_id(page, "lang-en").click()
    page.wait_for_selector("html[lang=en]")
    assert text_of(page, "nav-overview") == "Overview"
    assert text_of(page, "today-pass-rate") == "88.9%"
    assert "The certificate has expired" in by_id(page, "reasons").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "overview-en.png"), full_page=True)
    # A new browser (a new session) logs in to English: the choice is stored with the account.
    other = browser.new_context(locale="vi-VN")
    try:
        p2 = other.new_page()
        log_in(p2, site, "sup_lc")
        assert text_of(p2, "nav-overview") == "Overview"
    finally:
        other.close()
    by_id(page, "lang-vi").click()
    page.wait_for_selector("html[lang=vi]")
    assert text_of(page, "nav-devices") == "Thiết bị"


def test_refused_where_the_role_does_not_allow(page: Any, site: Site) -> None:
    log_in(page, site, "view_lc")
    assert page.locator("[data-test-id=nav-devices]").count() == 0
    for path in ("/devices", "/admin/users", "/checkpoints/HN-GL"):
        response = page.goto(f"{site.server.url}{path}")
        assert response.status == 403, path
        assert by_id(page, "error").get_attribute("data-status") == "403"
        assert "Bạn không có quyền xem trang này." in page.content()
        assert "Gia Lâm" not in page.content()
    by_id(page, "logout").click()
    page.wait_for_selector("[data-test-id=login-form]")
    page.screenshot(path=str(SCREENSHOTS / "login.png"))
    log_in(page, site, "admin")
    page.goto(f"{site.server.url}/admin/devices")
    assert page.locator("[data-test-id=admin-device-hn-gl-01]").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "admin-devices.png"), full_page=True)


def test_admin_uploads_a_trust_bundle_and_sees_which_units_run_which_version(
        page: Any, site: Site, ministry: Any, tmp_path: Path) -> None:
    unit = site.start_unit("lc-ic7-01")  # reports trust version 7
    try:
        bundle = tmp_path / "trust-bundle-v8.json"
        bundle.write_bytes(ministry.bundle(version=8))
        log_in(page, site, "admin")
        page.goto(f"{site.server.url}/admin/trust")
        by_id(page, "trust-file").set_input_files(str(bundle))
        by_id(page, "trust-submit").click()
        page.wait_for_selector("[data-test-id=flash-ok]")
        assert "phiên bản 8" in text_of(page, "flash-ok")
        assert text_of(page, "trust-version") == "8"
        rows = by_id(page, "units-by-version").locator("tbody tr").all_inner_texts()
        assert any(r.split() == ["7", "1"] for r in rows), rows
        page.screenshot(path=str(SCREENSHOTS / "admin-trust.png"), full_page=True)
        assert site.console_errors == []
    finally:
        unit.kill()
        unit.wait(10)
