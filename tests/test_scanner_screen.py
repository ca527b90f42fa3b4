"""The officer screen: its HTTP side (state, events, preview, host check) and the page in chromium."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from scanner.screen import OfficerScreen
from verifier import Holder, Verdict

HOLDER = Holder(family_name="Nguyễn", given_name="Thị Lan", family_name_t="NGUYEN", given_name_t="THI<LAN",
                dob="1990-04-12")
VERDICTS = {
    "green": Verdict("green", "complete_series", "Vaccination series complete.", "Đã tiêm đủ liều.",
                     policy="vn-2021", cert_type="v", holder=HOLDER,
                     detail={"dn": 2, "sd": 2, "dt": "2021-08-30", "mp": "EU/1/20/1528", "co": "VN"}),
    "yellow": Verdict("yellow", "partial", "Partly vaccinated.", "Đã tiêm một phần.", policy="vn-2021",
                      cert_type="v", holder=HOLDER, detail={"dn": 1, "sd": 2, "dt": "2021-08-30"}),
    "red": Verdict("red", "signature", "Signature does not match.", "Chữ ký không hợp lệ.", policy="vn-2021"),
}
STATUS = {"trust": {"version": 7, "age_s": 7200, "stale": False}, "network": {"connected": True, "backlog": 0},
          "clock": {"ok": True, "reason": "ok"}, "counts": {"green": 3, "yellow": 1, "red": 2},
          "camera": {"fps": 15.0, "error": None}, "outbox_error": None}


def preview_jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((90, 160), 128, np.uint8))
    assert ok
    return data.tobytes()


@pytest.fixture
def screen() -> Iterator[OfficerScreen]:
    s = OfficerScreen("127.0.0.1", 0, language="vi", verdict_seconds=30, preview=preview_jpeg, preview_fps=10)
    s.start()
    s.update_status(STATUS)
    try:
        yield s
    finally:
        s.stop()


def get(screen: OfficerScreen, path: str, host: str | None = None) -> tuple[int, bytes]:
    port = screen.server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host} if host else {}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_state_holds_the_verdict_then_forgets_it() -> None:
    s = OfficerScreen("127.0.0.1", 0, verdict_seconds=0.5)
    s.start()
    try:
        s.show(VERDICTS["green"])
        state = json.loads(get(s, "/state")[1])
        assert state["verdict"]["result"] == "green" and state["verdict"]["name"] == "Nguyễn Thị Lan"
        assert state["verdict"]["dob"] == "1990-04-12" and state["verdict"]["name_t"] == "NGUYEN THI LAN"
        assert {"vi": "Mũi tiêm", "en": "Doses", "value": "2/2"} in state["verdict"]["lines"]
        deadline = time.monotonic() + 5
        while s.state.has_verdict and time.monotonic() < deadline:
            time.sleep(0.05)
        body = get(s, "/state")[1]
        assert json.loads(body)["verdict"] is None
        assert "Nguyễn".encode() not in body and b"1990-04-12" not in body
        assert "Nguyễn" not in repr(vars(s.state))  # gone from memory, not only from the page
    finally:
        s.stop()


def test_events_stream_sends_each_change(screen: OfficerScreen) -> None:
    port = screen.server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")

    def next_event() -> dict:
        while True:
            line = resp.fp.readline()
            if line.startswith(b"data: "):
                return json.loads(line[6:])

    first = next_event()
    assert first["verdict"] is None and first["status"]["counts"]["green"] == 3
    screen.show(VERDICTS["red"])
    event = next_event()
    assert event["verdict"]["result"] == "red" and event["verdict"]["reason"] == "signature"
    conn.close()


def test_page_and_static_files_are_served(screen: OfficerScreen) -> None:
    status, body = get(screen, "/")
    assert status == 200 and b'src="/static/app.js"' in body
    assert get(screen, "/static/app.js")[0] == 200 and get(screen, "/static/style.css")[0] == 200
    assert get(screen, "/static/../config.py")[0] == 404
    assert get(screen, "/nothing")[0] == 404


def test_requests_for_another_host_are_refused(screen: OfficerScreen) -> None:
    screen.show(VERDICTS["green"])
    status, body = get(screen, "/state", host="evil.example:80")
    assert status == 403 and b"Nguy" not in body
    assert get(screen, "/state", host=f"localhost:{screen.server.server_address[1]}")[0] == 200


def test_screen_serves_on_ipv6_loopback_too() -> None:
    s = OfficerScreen("::1", 0)
    try:
        s.start()
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    try:
        assert s.url.startswith("http://[::1]:")
        with urllib.request.urlopen(s.url + "state", timeout=5) as resp:
            assert json.loads(resp.read())["verdict"] is None
    finally:
        s.stop()


def test_preview_streams_jpeg_only_while_watched(screen: OfficerScreen) -> None:
    assert screen.watchers == 0
    port = screen.server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/preview.mjpg")
    resp = conn.getresponse()
    assert resp.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=chotframe"
    data = b""
    while data.count(b"\xff\xd8") < 2:  # two JPEG starts
        data += resp.read1(4096)
    assert screen.watchers == 1
    resp.close()
    conn.close()
    deadline = time.monotonic() + 5
    while screen.watchers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert screen.watchers == 0


@pytest.mark.browser
def test_page_shows_each_colour_with_name_and_switches_language(screen: OfficerScreen, page) -> None:
    page.goto(screen.url)
    body = page.locator('[data-test-id="screen"]')
    page.wait_for_function("document.body.dataset.verdict === 'idle'")
    assert page.locator('[data-test-id="headline"]').inner_text() == "Đưa mã QR vào camera"
    assert "Hợp lệ 3" in page.locator('[data-test-id="counts"]').inner_text().replace("\u00a0", " ")
    colours = {"green": "rgb(24, 127, 54)", "yellow": "rgb(242, 194, 0)", "red": "rgb(198, 40, 40)"}
    headlines = {"green": "HỢP LỆ", "yellow": "CẦN KIỂM TRA", "red": "KHÔNG HỢP LỆ"}
    for result, verdict in VERDICTS.items():
        screen.show(verdict)
        page.wait_for_function(f"document.body.dataset.verdict === '{result}'")
        page.wait_for_function("c => getComputedStyle(document.body).backgroundColor === c",
                               arg=colours[result])
        assert body.get_attribute("data-sound") == result  # its own sound was played
        assert page.locator('[data-test-id="headline"]').inner_text().replace("\u00a0", " ") == headlines[result]
        assert page.locator('[data-test-id="message"]').inner_text() == verdict.message_vi
        if verdict.holder:
            assert page.locator('[data-test-id="name"]').inner_text() == "Nguyễn Thị Lan"
            assert "12/04/1990" in page.locator('[data-test-id="dob"]').inner_text()
    screen.show(VERDICTS["green"])
    page.wait_for_function("document.body.dataset.verdict === 'green'")
    assert "2/2" in page.locator('[data-test-id="lines"]').inner_text()
    page.locator('[data-test-id="lang"]').click()
    assert page.locator('[data-test-id="headline"]').inner_text() == "VALID"
    assert page.locator('[data-test-id="message"]').inner_text() == "Vaccination series complete."
    assert "Doses" in page.locator('[data-test-id="lines"]').inner_text()


@pytest.mark.browser
def test_page_warns_about_clock_and_stale_trust_and_goes_idle(page) -> None:
    s = OfficerScreen("127.0.0.1", 0, verdict_seconds=1.0)
    s.start()
    try:
        s.update_status({**STATUS, "clock": {"ok": False, "reason": "behind_bundle"},
                         "trust": {"version": 7, "age_s": 400000, "stale": True},
                         "network": {"connected": False, "backlog": 12}})
        page.goto(s.url)
        warnings = page.locator('[data-test-id="warnings"]')
        page.wait_for_function("document.querySelector('[data-test-id=warnings]').textContent.length > 0")
        text = warnings.inner_text()
        assert "Đồng hồ thiết bị sai" in text and "Danh sách tin cậy đã cũ" in text
        assert "Mất kết nối · 12 chờ gửi" in page.locator('[data-test-id="network"]').inner_text()
        s.show(VERDICTS["yellow"])
        page.wait_for_function("document.body.dataset.verdict === 'yellow'")
        page.wait_for_function("document.body.dataset.verdict === 'idle'", timeout=5000)
        assert page.locator('[data-test-id="name"]').inner_text() == ""
    finally:
        s.stop()
