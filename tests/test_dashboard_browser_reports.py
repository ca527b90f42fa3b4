"""In Debian's chromium: the completeness line while a unit is offline with a backlog and after it
drains, CSV and XLSX downloads read back against the page and the API, the tile map and its
links, and the daily report (screen, print, workbook).

The central side is real (Mosquitto, the ingest, SQLite, the web app); units are processes that
log in with their own credentials and leave a last will. Screenshots go to CHOT_SCREENSHOTS.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import paho.mqtt.client as mqtt
import pytest

from tests.test_dashboard_browser import SCREENSHOTS, Site, by_id, log_in, run_site

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.timeout(180)]

@pytest.fixture
def report_site(tmp_path: Path, mosquitto_factory: Callable[..., Any], ministry: Any) -> Iterator[Site]:
    yield from run_site(tmp_path, mosquitto_factory, ministry, offline_after_s=300)


def say_status(site: Site, device: str, backlog: int) -> None:
    """Publish `device`'s retained online status with `backlog` waiting, as its unit does."""
    creds = site.units[device]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"status-{device}", protocol=mqtt.MQTTv311)
    client.username_pw_set(device, creds.password)
    client.connect("127.0.0.1", site.central.port, keepalive=10)
    client.loop_start()
    try:
        status = {"state": "online", "software": "chot 0.1.0", "trust_version": 7, "trust_age_s": 60,
                  "backlog": backlog, "clock": "ok", "fps": 15.0, "temperature_c": 47.0, "uptime_s": 5}
        client.publish(f"chot/v1/{creds.checkpoint}/{device}/status", json.dumps(status), qos=1,
                       retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def wait_attr(page: Any, test_id: str, name: str, value: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_selector(f'[data-test-id="{test_id}"][{name}="{value}"]', timeout=timeout_ms)


def api(page: Any, site: Site, path: str) -> Any:
    return page.request.get(f"{site.server.url}{path}").json()


def page_rows(page: Any, test_id: str) -> dict[str, list[int]]:
    """The rows of a rates table on the page: label -> [total, green, yellow, red]."""
    rows = {}
    for tr in page.locator(f'[data-test-id="{test_id}"] tbody tr').all():
        cells = [c.strip() for c in tr.locator("td").all_inner_texts()]
        rows[cells[0]] = [int(c.replace(".", "")) for c in cells[1:5]]
    return rows


def download(page: Any, test_id: str, folder: Path) -> bytes:
    with page.expect_download() as info:
        by_id(page, test_id).click()
    target = folder / info.value.suggested_filename
    info.value.save_as(str(target))
    return target.read_bytes()


def test_completeness_exports_map_and_report_in_the_browser(page: Any, report_site: Site, tmp_path: Path) -> None:
    site = report_site
    # Events first: the broker lets one connection per unit login (a second one takes over).
    site.publish("lc-ic7-01", [("green", "complete_series")] * 7 + [("yellow", "partial")] * 2
                 + [("red", "signature")], minutes_ago=5)
    site.publish("hn-gl-01", [("green", "complete_series")] * 4 + [("red", "cwt_expired")], minutes_ago=15)
    site.publish("lc-ic7-02", [("green", "complete_series")] * 3, minutes_ago=25)
    site.wait_stored(18)
    units = {"lc-ic7-01": site.start_unit("lc-ic7-01"), "hn-gl-01": site.start_unit("hn-gl-01"),
             "lc-ic7-02": site.start_unit("lc-ic7-02", backlog=12)}
    try:
        log_in(page, site, "admin")
        page.wait_for_selector("[data-test-id=live-status][data-state=open]")
        line = "completeness-today"
        # The ingest may still be storing the units' first statuses: wait for all three.
        page.wait_for_selector(f'[data-test-id="{line}"][data-complete-units="2"][data-pending="12"]', timeout=60_000)
        assert by_id(page, line).get_attribute("data-units") == "3"
        assert "lc-ic7-02 đang gửi bù, còn 12 kết quả chờ gửi" in by_id(page, line).inner_text()

        # The unit's link dies with 12 verdicts still in its outbox: the broker sends its will.
        os.kill(units["lc-ic7-02"].pid, signal.SIGKILL)
        units["lc-ic7-02"].wait(60)
        page.wait_for_function(
            "() => document.querySelector('[data-test-id=completeness-today]').textContent"
            ".includes('lc-ic7-02 mất kết nối từ')", timeout=60_000)
        text = by_id(page, line).inner_text()
        assert "cho 2/3 thiết bị" in text and "còn 12 kết quả chờ gửi" in text
        assert by_id(page, line).get_attribute("data-final") == "false"
        by_id(page, line).locator("xpath=..").screenshot(path=str(SCREENSHOTS / "completeness.png"))
        # The units were registered today, so only today's count can lack their verdicts.
        now = api(page, site, "/api/v1/overview")["completeness"]["today"]
        assert not now["final"] and [(u["device"], u["state"], u["pending"]) for u in now["lagging"]] == \
            [("lc-ic7-02", "offline", 12)]
        assert now["all_units_complete_to"] < now["complete_to"]  # its part of today is not known whole

        # Back online, it delivers its backlog, then says its outbox is empty: complete again.
        site.publish("lc-ic7-02", [("green", "complete_series")] * 10 + [("red", "revoked")] * 2, minutes_ago=20)
        site.wait_stored(30)
        say_status(site, "lc-ic7-02", 0)
        wait_attr(page, line, "data-complete-units", "3")
        assert "cho 3/3 thiết bị" in by_id(page, line).inner_text()
        assert by_id(page, line).get_attribute("data-pending") == "0"
        now = api(page, site, "/api/v1/overview")["completeness"]["today"]
        assert now["lagging"] == [] and now["all_units_complete_to"] == now["complete_to"]
        assert not now["final"]  # the day is not over
        today_total = api(page, site, "/api/v1/overview")["today"]["total"]
        page.wait_for_function(
            "(n) => document.querySelector('[data-test-id=today-total]').textContent.trim() === String(n)",
            arg=today_total, timeout=60_000)

        # Downloads, read back: the same figures as the page's table and the API.
        overview = api(page, site, "/api/v1/overview")
        want = {g["label"]: [g["total"], g["green"], g["yellow"], g["red"]] for g in overview["by_checkpoint"]}
        assert page_rows(page, "by-checkpoint") == want
        body = download(page, "download-by_checkpoint-csv", tmp_path)
        assert body.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))
        assert rows[0][0] == "Chốt" and [] not in rows  # a CSV starts with its header row
        assert {r[0]: [int(v) for v in r[1:5]] for r in rows[1:]} == want
        book = openpyxl.load_workbook(io.BytesIO(download(page, "download-by_checkpoint-xlsx", tmp_path)))
        cells = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
        table = cells[next(i for i, r in enumerate(cells) if all(v is None for v in r)) + 2:]
        assert {r[0]: r[1:5] for r in table} == want
        assert "IC7 Nội Bài–Lào Cai" in want

        # The map: every province a square, shaded, each in scope a link to its page.
        tiles = page.locator("svg.tilemap rect")
        assert tiles.count() == 63
        assert by_id(page, "map-10").get_attribute("data-total") == str(want["IC7 Nội Bài–Lào Cai"][0])
        by_id(page, "map").screenshot(path=str(SCREENSHOTS / "map.png"))
        by_id(page, "map-10").click()
        page.wait_for_url("**/provinces/10")
        assert "Lào Cai (10)" in page.locator("h1").inner_text()
        assert page.locator('[data-test-id="by-checkpoint"] tbody tr').count() == 1

        # The daily report of Lào Cai: on screen, as printed on A4, and as a workbook.
        page.goto(f"{site.server.url}/reports?area=province:10")
        report = api(page, site, "/api/v1/report?area=province:10")
        total_row = [c.strip() for c in by_id(page, "report-total").locator("th").all_inner_texts()]
        assert int(total_row[2].replace(".", "")) == report["totals"]["total"] == sum(report["hours_total"])
        assert report["completeness"]["text"] in by_id(page, "completeness-report").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
        page.emulate_media(media="print")
        assert page.locator("header.topbar").is_hidden() and by_id(page, "report-form").is_hidden()
        pdf = page.pdf(format="A4", print_background=True)
        assert pdf.startswith(b"%PDF")
        page.screenshot(path=str(SCREENSHOTS / "report-print.png"), full_page=True)
        page.emulate_media(media="screen")
        book = openpyxl.load_workbook(io.BytesIO(download(page, "report-xlsx", tmp_path)))
        summary = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
        assert summary[1][0] == report["completeness"]["text"]
        assert next(r for r in summary if r[0] == "Tổng số")[2] == report["totals"]["total"]
        assert len(book.sheetnames) == 5
        assert site.console_errors == []
    finally:
        for proc in units.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_a_province_supervisor_sees_and_opens_only_its_province(page: Any, report_site: Site) -> None:
    site = report_site
    site.publish("hn-gl-01", [("green", "complete_series")] * 3)
    site.publish("lc-ic7-01", [("red", "signature")])
    site.wait_stored(4)
    log_in(page, site, "sup_hn")
    assert by_id(page, "map-01").count() == 1 and by_id(page, "map-10").count() == 0
    assert page.locator('svg.tilemap [data-province="10"]').get_attribute("data-total") == "0"
    by_id(page, "map-01").click()
    page.wait_for_url("**/provinces/01")
    response = page.goto(f"{site.server.url}/provinces/10")
    assert response.status == 403
    response = page.goto(f"{site.server.url}/reports?area=province:10")
    assert response.status == 403 and "nằm ngoài phạm vi" in page.content()
    assert [e for e in site.console_errors if "403" not in e] == []  # only the refusals asked for
