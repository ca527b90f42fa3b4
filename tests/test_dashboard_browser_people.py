"""In Debian's chromium, what supervisors meet (issue 28): a completeness line that stays calm
while every unit is online and drains its outbox within its reporting interval (and warns when
one does not), the overview and the checkpoint page agreeing, and the pages on a phone.

The store is real (SQLite) and written as the ingest writes it (`record_status`, events); the
app's clock is pinned and moved by the test, so "within the interval" is exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.store import StatusUpdate
from tests.support.dashboard_web import LiveServer, Seeded, make_app, seed
from tests.test_dashboard_browser import SCREENSHOTS, by_id, log_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

HEALTHY: dict[str, Any] = {"software": "chot 0.1.0", "trust_version": 7, "trust_age_s": 3600.0, "clock": "ok",
                           "fps": 14.5, "temperature_c": 52.3, "uptime_s": 7200.0}


class PeopleSite:
    def __init__(self, seeded: Seeded, server: LiveServer) -> None:
        self.seeded, self.server, self.console_errors = seeded, server, []  # type: list[str]

    def status(self, device: str, backlog: int, ago_s: float = 0.0) -> None:
        """A unit's online status as the ingest stores it, `ago_s` before the app's now."""
        self.seeded.store.record_status(device, StatusUpdate("online", backlog=backlog, **HEALTHY),
                                        self.seeded.now - timedelta(seconds=ago_s))


@pytest.fixture
def people_site(tmp_path: Path) -> Iterator[PeopleSite]:
    seeded = seed(tmp_path / "chot.db")
    app = make_app(seeded, tmp_path / "instance", CHOT_UNIT_REPORT_INTERVAL_S=60.0, CHOT_OFFLINE_ALARM_S=90)
    server = LiveServer(app)
    try:
        yield PeopleSite(seeded, server)
    finally:
        server.stop()
        seeded.close()


def line_state(page: Any, test_id: str) -> tuple[str, str, str, str]:
    line = by_id(page, test_id)
    return (line.get_attribute("class") or "", line.get_attribute("data-complete-units") or "",
            line.get_attribute("data-units") or "", line.inner_text())


def test_the_completeness_line_stays_calm_in_normal_running_and_warns_when_an_outbox_does_not_drain(
        page: Any, people_site: PeopleSite) -> None:
    site = people_site
    url = site.server.url
    # Every unit online; each just scanned someone: outbox empty a few seconds ago, 1 waiting now.
    for device in ("u-ic7-1", "u-ic7-2", "u-hn-1"):
        site.status(device, 0, ago_s=25)
    log_in(page, site, "sup_lc")  # type: ignore[arg-type]
    seen: set[tuple[str, ...]] = set()
    for step in range(6):
        # Between reloads the units send and drain, as they do all day.
        site.status("u-ic7-1", step % 2, ago_s=3)
        site.status("u-ic7-2", (step + 1) % 2, ago_s=2)
        if step % 2:
            site.status("u-ic7-2", 0, ago_s=10 + step)  # an older "empty" seen late changes nothing
        page.goto(f"{url}/")
        overview = line_state(page, "completeness-today")
        page.goto(f"{url}/checkpoints/IC7")
        checkpoint = line_state(page, "completeness-checkpoint")
        for cls, done, units, text in (overview, checkpoint):
            assert "lagging" not in cls and not text.startswith("⚠"), text
            assert done == units == "2", text
            assert "gửi bù" not in text and "chờ gửi" not in text, text
        assert overview[1:] == checkpoint[1:]  # the same units, the same words on both pages
        # The time said is at most one reporting interval behind now (12:00): 11:59 or 12:00.
        assert re.search(r"Đầy đủ đến (11:59|12:00) cho 2/2 thiết bị", overview[3]), overview[3]
        seen.add((overview[0], overview[1], overview[2], overview[3][0], checkpoint[0], checkpoint[3][0]))
    assert len(seen) == 1, seen  # no flip-flop of the state across reloads

    # One unit has had 5 waiting for over a reporting interval: now it is named, on both pages.
    site.status("u-ic7-1", 0, ago_s=0)
    site.seeded.now += timedelta(seconds=61)
    site.status("u-ic7-1", 5, ago_s=1)
    site.status("u-ic7-2", 0, ago_s=1)
    site.status("u-hn-1", 0, ago_s=1)
    for path, test_id in (("/", "completeness-today"), ("/checkpoints/IC7", "completeness-checkpoint")):
        page.goto(url + path)
        cls, done, units, text = line_state(page, test_id)
        assert "lagging" in cls and text.startswith("⚠") and (done, units) == ("1", "2"), text
        assert "u-ic7-1 đang gửi bù, còn 5 kết quả chờ gửi" in text
    assert site.console_errors == []


PHONE = {"width": 390, "height": 844}


def test_on_a_phone_no_page_scrolls_sideways_and_the_header_is_compact(browser: Any, people_site: PeopleSite) -> None:
    site = people_site
    for device in ("u-ic7-1", "u-ic7-2", "u-hn-1"):
        site.status(device, 0)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN", has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        log_in(page, site, "admin")  # type: ignore[arg-type]
        page.set_viewport_size(PHONE)
        for path in ("/", "/checkpoints/IC7", "/reports", "/devices", "/provinces/10", "/admin/users",
                     "/admin/audit"):
            page.goto(site.server.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} renders {width} px wide"
            header = page.locator("header.topbar").bounding_box()
            assert header is not None and header["height"] <= 110, f"{path}: header {header}"
            if path == "/":
                page.screenshot(path=str(SCREENSHOTS / "overview-phone.png"))
        # Wide tables scroll inside their card: the per-unit counts are all there to be scrolled to.
        page.goto(site.server.url + "/checkpoints/IC7")
        assert by_id(page, "unit-counts-u-ic7-1").count() == 1
    finally:
        context.close()
    assert site.console_errors == []


def test_trend_is_labelled_map_labels_readable_and_no_data_unlike_zero(page: Any, people_site: PeopleSite) -> None:
    site = people_site
    # Hà Nội: 3 reds for a missing record, none let through (0%); Lào Cai: no such reds (no data).
    site.seeded.events("u-hn-1", "HN-GIA", [("red", "incomplete_series")] * 3)
    log_in(page, site, "admin")  # type: ignore[arg-type]
    trend = by_id(page, "trend")
    assert "lượt quét mỗi ngày" in by_id(page, "trend-caption").inner_text()
    assert trend.locator('[data-test-id="trend-bar"]').count() == 7
    days = [d.text_content() for d in trend.locator('[data-test-id="trend-day"]').all()]
    assert len(days) == 7 and days[-1] == "25/11"  # today on the right, dd/mm
    for label in page.locator("svg.tilemap text").all()[:10]:
        box = label.bounding_box()
        assert box is not None and box["height"] >= 11, box
        assert float(label.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 11
    page.goto(f"{site.server.url}/?map=missing")
    zero = page.locator('svg.tilemap [data-province="01"] rect')
    none = page.locator('svg.tilemap [data-province="10"] rect')
    assert page.locator('svg.tilemap [data-province="01"]').get_attribute("data-gap-share") == "0.0000"
    assert none.get_attribute("class") == "nodata" and zero.get_attribute("class") is None
    fills = [tile.get_attribute("fill") or "" for tile in (zero, none)]
    rgb = [tuple(int(f[i:i + 2], 16) for i in (1, 3, 5)) for f in fills]
    assert sum(abs(a - b) for a, b in zip(*rgb)) >= 60, fills  # clearly another colour, not a near-grey
    dash = none.evaluate("e => getComputedStyle(e).strokeDasharray")
    assert dash not in ("none", ""), dash  # and drawn with a dashed edge
    by_id(page, "map").screenshot(path=str(SCREENSHOTS / "map-missing.png"))
    assert site.console_errors == []
