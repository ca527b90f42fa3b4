"""The officer screen as an officer reads it, on the units' own screen sizes (issue 11).

Headlines wrap only between words (never inside "KIỂM TRA" or "HỢP LỆ") and stay inside their
column at 800x480 and 1280x720; dates read dd/mm/yyyy as on a citizen ID card; the colour names
are the system's, the same words the dashboard shows.
"""

from __future__ import annotations

from typing import Any

import pytest

from scanner.screen import OfficerScreen
from tests.test_scanner_screen import HOLDER, STATUS, screen  # noqa: F401 - fixture
from verifier import Holder, Verdict
from protocol.words import COLOURS

VERDICTS = {
    "green": Verdict("green", "complete_series", "Vaccination series complete.", "Đã tiêm đủ liều.",
                     policy="vn-2021", cert_type="v", holder=HOLDER,
                     detail={"dn": 2, "sd": 2, "dt": "2021-08-30", "mp": "EU/1/20/1528", "co": "VN"}),
    "yellow": Verdict("yellow", "negative_test", "Negative test.", "Xét nghiệm âm tính.", policy="vn-2021",
                      cert_type="t", holder=Holder(family_name="Trần", given_name="Văn Bình", family_name_t="TRAN",
                                    given_name_t="VAN<BINH", dob="1975-11"),
                      detail={"tt": "LP6464-4", "tr": "260415000", "sc": "2021-09-03T01:30:00Z"}),
    "red": Verdict("red", "recovery_expired", "Recovery expired.", "Đã khỏi bệnh quá 180 ngày.",
                   policy="vn-2021", cert_type="r", holder=HOLDER,
                   detail={"fr": "2021-01-05", "du": "2021-07-04"}),
}
# Two-syllable words a line must never split (the issue saw "CẦN KIỂM / TRA", "KHÔNG HỢP / LỆ").
WHOLE_WORDS = ("KIỂM TRA", "HỢP LỆ")

# Each character's line (its top), so the test sees where the browser really broke the text.
CHARACTER_TOPS = """el => {
  const node = el.firstChild, text = node.textContent, range = document.createRange(), tops = [];
  for (let i = 0; i < text.length; i++) {
    range.setStart(node, i); range.setEnd(node, i + 1);
    const r = range.getClientRects();
    tops.push(r.length ? Math.round(r[0].top) : null);
  }
  const box = el.getBoundingClientRect();
  return {text, tops, scrollWidth: el.scrollWidth, clientWidth: el.clientWidth, right: box.right,
          viewport: window.innerWidth};
}"""


def lines_of(layout: dict[str, Any]) -> list[str]:
    """The headline's text as the browser laid it out, one string per line."""
    lines: dict[int, str] = {}
    for ch, top in zip(layout["text"], layout["tops"]):
        if top is not None:
            lines[top] = lines.get(top, "") + ch
    return [lines[top].strip() for top in sorted(lines)]


def assert_whole_words(layout: dict[str, Any]) -> None:
    text = layout["text"].replace("\u00a0", " ")
    words = [(i, w) for i, w in enumerate(text.split(" "))]
    at = 0
    for _, word in words:  # every word's letters on one line
        tops = {layout["tops"][at + k] for k in range(len(word))}
        assert len(tops) <= 1, (word, lines_of(layout))
        at += len(word) + 1
    for whole in WHOLE_WORDS:  # and each two-syllable word on one line
        start = text.find(whole)
        if start >= 0:
            tops = {layout["tops"][start + k] for k in range(len(whole)) if text[start + k] != " "}
            assert len(tops) == 1, (whole, lines_of(layout))
    assert layout["scrollWidth"] <= layout["clientWidth"] + 1, layout
    assert layout["right"] <= layout["viewport"], layout


@pytest.mark.browser
@pytest.mark.parametrize("width,height", [(800, 480), (1280, 720)])
def test_headline_wraps_only_between_words_and_dates_read_day_month_year(
        browser: Any, screen: OfficerScreen, width: int, height: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN",
                                  timezone_id="Asia/Ho_Chi_Minh")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(screen.url)
        page.wait_for_function("document.body.dataset.verdict === 'idle'")
        headline = page.locator('[data-test-id="headline"]')
        seen = {}
        for language in ("vi", "en"):
            for result, verdict in VERDICTS.items():
                screen.show(verdict)
                page.wait_for_function(f"document.body.dataset.verdict === '{result}'")
                want = COLOURS[result][0 if language == "vi" else 1].upper()
                page.wait_for_function("w => document.querySelector('[data-test-id=headline]').textContent"
                                       ".replace(/\\u00a0/g, ' ') === w", arg=want.replace("\u00a0", " "))
                layout = headline.evaluate(CHARACTER_TOPS)
                assert_whole_words(layout)
                seen[(language, result)] = lines_of(layout)
                if language == "vi":
                    dob = page.locator('[data-test-id="dob"]').inner_text()
                    lines = page.locator('[data-test-id="lines"]').inner_text()
                    if result == "green":
                        assert dob == "Ngày sinh: 12/04/1990" and "30/08/2021" in lines, (dob, lines)
                    elif result == "yellow":  # a DCC birth date may be only year and month
                        assert dob == "Ngày sinh: 11/1975" and "03/09/2021 08:30" in lines, (dob, lines)
                    else:
                        assert "05/01/2021" in lines and "04/07/2021" in lines, lines
                    assert "2021-" not in lines and "1990-" not in dob
            if language == "vi":
                page.locator('[data-test-id="lang"]').click()
                page.wait_for_function("document.documentElement.lang === 'en'")
        # The long headline really was at risk: at least one size needs two lines, broken between words.
        assert all(len(lines) <= 2 for lines in seen.values()), seen
        trust = page.locator('[data-test-id="trust"]').inner_text()
        assert trust.startswith("Trust list v7")
        page.locator('[data-test-id="lang"]').click()
        page.wait_for_function("document.documentElement.lang === 'vi'")
        assert page.locator('[data-test-id="trust"]').inner_text().startswith("Danh sách tin cậy bản 7")
        # Status bar items move down whole on a narrow screen ("Đã kết nối" never split).
        rows = page.evaluate("""[...document.querySelectorAll('.bar .item')].filter(e => e.textContent).map(e => {
            const r = document.createRange(); r.selectNodeContents(e);
            return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; })""")
        assert rows and all(n == 1 for n in rows), rows
        counts = page.locator('[data-test-id="counts"]').inner_text().replace("\u00a0", " ")
        assert counts == "Hợp lệ 3 · Cần kiểm tra 1 · Không hợp lệ 2", counts
    finally:
        context.close()


def test_the_dashboard_and_the_unit_name_the_colours_alike() -> None:
    from dashboard.web.i18n import MESSAGES
    from scanner.screen.server import _load_static

    words = _load_static()["words.js"].decode()
    for result, (vi, en) in COLOURS.items():
        assert MESSAGES[result] == (vi, en)
        assert f'"{result}": {{"vi": "{vi}", "en": "{en}"}}' in words
