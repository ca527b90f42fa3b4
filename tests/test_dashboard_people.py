"""What supervisors meet around the numbers (issue 28): officer decisions and manual checks in
every report and export, the two rates said plainly, spreadsheets a spreadsheet can filter,
counts per unit on the checkpoint page, words in Vietnamese.

Decisions are made through the store with the same events units send (`decide`); every figure
is read back from the download and compared with the JSON API.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.support.dashboard_web import (
    Seeded,
    login,
    make_app,
    page_token,
    seeded,  # noqa: F401 - fixture
)
from tests.test_dashboard_decisions import decide

NBSP = ("\u00a0", "\u202f")


@pytest.fixture
def decided(seeded: Seeded) -> Seeded:  # noqa: F811
    # IC7 (Lào Cai): 2 officer decisions after a red, 1 manual check. HN-GIA: 1 decision.
    for _ in range(2):
        decide(seeded, "u-ic7-1", "IC7", "CA-1", "let_through", "paper_proof", ("red", "too_soon_after_dose"))
    decide(seeded, "u-ic7-2", "IC7", "CA-2", "turned_back", "no_proof", None)
    decide(seeded, "u-hn-1", "HN-GIA", "HN-9", "turned_back", "no_proof", ("red", "signature"))
    return seeded


@pytest.fixture
def app(decided: Seeded, tmp_path: Path) -> Any:
    return make_app(decided, tmp_path / "instance")


def client_for(app: Any, username: str) -> Any:
    c = app.test_client()
    assert login(c, username).status_code == 302
    return c


def csv_rows(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))


def sheet_cells(body: bytes, index: int = 0) -> tuple[Any, list[list[Any]]]:
    ws = openpyxl.load_workbook(io.BytesIO(body)).worksheets[index]
    return ws, [[c.value for c in row] for row in ws.iter_rows()]


def test_report_page_workbook_and_exports_carry_decisions_and_manual_checks(app: Any) -> None:
    c = client_for(app, "admin")
    api = c.get("/api/v1/overview").get_json()
    ic7 = next(g for g in api["by_checkpoint"] if g["key"] == "IC7")
    assert (ic7["decisions"], ic7["manual_checks"]) == (2, 1)  # what the overview already knew

    report = c.get("/api/v1/report").get_json()
    row = next(r for r in report["by_checkpoint"] if r["id"] == "IC7")
    assert (row["decisions"], row["manual_checks"]) == (2, 1)
    assert (report["totals"]["decisions"], report["totals"]["manual_checks"]) == (3, 1)
    page = c.get("/reports").get_data(as_text=True)
    assert 'data-test-id="report-cp-IC7-decisions">2<' in page and 'data-test-id="report-cp-IC7-manual">1<' in page
    assert 'data-test-id="report-total-decisions">3<' in page

    _, cells = sheet_cells(c.get("/reports.xlsx").get_data())
    header = next(r for r in cells if r and r[0] == "Chốt")
    ic7_cells = dict(zip(header, next(r for r in cells if r[0] == "IC7 Nội Bài–Lào Cai")))
    assert (ic7_cells["Quyết định của cán bộ"], ic7_cells["Kiểm tra thủ công"]) == (2, 1)
    total = dict(zip(header, next(r for r in cells if r[0] == "Tổng số")))
    assert (total["Quyết định của cán bộ"], total["Kiểm tra thủ công"]) == (3, 1)

    for table, key in (("by_checkpoint", "IC7"), ("by_province", "10")):
        rows = csv_rows(c.get(f"/export/{table}.csv").get_data())
        want = next(g for g in api[table] if g["key"] == key)
        got = dict(zip(rows[0], next(r for r in rows[1:] if r[0] == want["label"])))
        assert (int(got["Quyết định của cán bộ"]), int(got["Kiểm tra thủ công"])) == (2, 1)


def test_both_rates_are_named_and_agree_with_the_reasons_table(app: Any) -> None:
    c = client_for(app, "sup_lc")
    api = c.get("/api/v1/checkpoints/IC7").get_json()
    today = api["today"]
    assert today["pass_rate"] == pytest.approx((today["green"] + today["yellow"]) / today["total"])
    assert today["green_rate"] == pytest.approx(today["green"] / today["total"])
    # The reasons beside the rates list exactly the non-green verdicts: the green rate's complement.
    assert sum(r["count"] for r in api["reasons"]) == today["total"] - today["green"]
    page = c.get("/checkpoints/IC7").get_data(as_text=True)
    assert "Tỷ lệ cho qua (xanh + vàng)" in page and "Tỷ lệ hợp lệ đầy đủ (chỉ xanh)" in page
    assert "Lý do không xanh (vàng và đỏ)" in page and "Lý do không đạt" not in page
    assert 'data-test-id="checkpoint-today-green-rate"' in page


def test_spreadsheets_filterable_frozen_dated_and_csv_header_first(app: Any, decided: Seeded) -> None:
    c = client_for(app, "admin")
    for table in ("by_province", "by_checkpoint", "timeseries", "reasons", "devices"):
        body = c.get(f"/export/{table}.csv").get_data()
        rows = csv_rows(body)
        assert rows[0][0] in ("Tỉnh/thành", "Chốt", "Bắt đầu", "Kết quả", "Thiết bị"), (table, rows[0])
        assert [] not in rows and not any(ch in body.decode("utf-8") for ch in NBSP), table
        ws, cells = sheet_cells(c.get(f"/export/{table}.xlsx").get_data())
        blank = next(i for i, r in enumerate(cells) if all(v is None for v in r))
        assert cells[blank + 1][:len(rows[0])] == [h.replace(" (%)", "") for h in rows[0]], table
        header_row = blank + 2  # 1-based
        assert ws.freeze_panes == f"A{header_row + 1}", table
        assert not any(ch in str(v) for r in cells for v in r if v is not None for ch in NBSP), table
    _, cells = sheet_cells(c.get("/export/timeseries.xlsx").get_data())
    starts = [r[0] for r in cells[cells.index(next(r for r in cells if r[0] == "Bắt đầu")) + 1:]]
    assert starts and all(isinstance(v, datetime) for v in starts)
    book = openpyxl.load_workbook(io.BytesIO(c.get("/reports.xlsx").get_data()))
    devices = [[x.value for x in r] for r in book.worksheets[4].iter_rows()]
    seen = [r[3] for r in devices[devices.index(next(r for r in devices if r[0] == "Thiết bị")) + 1:]]
    assert any(isinstance(v, datetime) for v in seen)
    assert "u-ic7-1" in {r[0] for r in devices}
    day = decided.now.date().isoformat()
    by_day = [[x.value for x in r] for r in book.worksheets[2].iter_rows()]
    assert any(isinstance(r[0], datetime) and r[0].date() == date.fromisoformat(day) for r in by_day)
    # The devices CSV says states in words, provinces by name, dates as ISO.
    rows = csv_rows(c.get("/export/devices.csv").get_data())
    u1 = dict(zip(rows[0], next(r for r in rows if r[0] == "u-ic7-1")))
    assert u1["Tỉnh/thành"].startswith("Lào Cai") and u1["Trạng thái"] != "online"
    assert datetime.fromisoformat(u1[rows[0][4]])


def test_the_checkpoint_page_counts_per_unit_as_each_units_own_counter(app: Any) -> None:
    c = client_for(app, "sup_lc")
    api = c.get("/api/v1/checkpoints/IC7").get_json()
    per_unit = {u["device"]: u for u in api["by_device"]}
    assert set(per_unit) == {"u-ic7-1", "u-ic7-2"}  # every unit, with or without results
    one, two = per_unit["u-ic7-1"], per_unit["u-ic7-2"]
    # Seeded 5 green, 2 yellow, 3 red on u-ic7-1, then two reds each lifted by an officer.
    assert (one["green"], one["yellow"], one["red"], one["decisions"], one["manual_checks"]) == (5, 2, 5, 2, 0)
    assert (two["total"], two["manual_checks"]) == (0, 1)
    for kind in ("green", "yellow", "red", "decisions", "manual_checks"):
        assert sum(u[kind] for u in per_unit.values()) == api["today"][kind], kind
    page = c.get("/checkpoints/IC7").get_data(as_text=True)
    row = page.split('data-test-id="unit-counts-u-ic7-1"')[1].split("</tr>")[0]
    assert [cell.split("</td>")[0] for cell in row.split('class="num">')[1:]] == ["12", "5", "2", "5", "2", "0"]


def audit_rows(decided: Seeded, action: str) -> list[Any]:
    from dashboard.scope import Scope

    return [e for e in decided.store.audit_log(Scope.all(), limit=500) if e.action == action]


def test_refusals_and_json_reports_are_in_the_audit_log(app: Any, decided: Seeded) -> None:
    hn = client_for(app, "sup_hn")
    assert hn.get("/export/by_checkpoint.csv?area=province:10").status_code == 403
    assert hn.get("/reports?area=province:10").status_code == 403
    refused = audit_rows(decided, "refused")
    assert [(e.actor, e.target.split("?")[0], e.province) for e in refused][:2] == [
        ("sup_hn", "GET /reports", "01"), ("sup_hn", "GET /export/by_checkpoint.csv", "01")]
    assert "Lào Cai (10)" in refused[0].detail and "province:10" not in refused[0].detail
    pa = client_for(app, "padmin_lc")
    token = page_token(pa, "/admin/users")
    assert pa.post("/admin/users/sup_hn/remove", data={"csrf_token": token}).status_code == 403
    last = audit_rows(decided, "refused")[0]
    assert (last.actor, last.target, last.province) == ("padmin_lc", "POST /admin/users/sup_hn/remove", "10")
    # The national admin and Lào Cai's admin both see Lào Cai's refusal; a JSON report is logged too.
    assert "refused" in pa.get("/admin/audit").get_data(as_text=True) or "bị từ chối" in pa.get("/admin/audit").get_data(as_text=True)
    lc = client_for(app, "sup_lc")
    assert lc.get("/api/v1/report?area=province:10").status_code == 200
    report = audit_rows(decided, "report")[0]
    assert (report.actor, report.province) == ("sup_lc", "10") and "JSON" in report.target


def test_an_area_outside_the_scope_is_refused_alike_on_pages_api_and_exports(app: Any) -> None:
    hn = client_for(app, "sup_hn")
    for path in ("/?area=province:10", "/api/v1/overview?area=province:10", "/export/by_province.xlsx?area=province:10",
                 "/reports?area=province:10", "/api/v1/report?area=checkpoint:IC7"):
        resp = hn.get(path)
        assert resp.status_code == 403, path
        body = resp.get_json()["error"] if resp.is_json else resp.get_data(as_text=True)
        assert "nằm ngoài phạm vi của bạn" in body and ":" in body, path
    lc = client_for(app, "sup_lc")
    narrowed = lc.get("/api/v1/overview?area=checkpoint:IC7").get_json()
    assert [g["key"] for g in narrowed["by_checkpoint"]] == ["IC7"]
    assert lc.get("/?area=province:10").status_code == 200


def test_province_admins_manage_their_checkpoints_officers_and_not_each_other(app: Any, decided: Seeded) -> None:
    from dashboard.scope import Scope
    from tests.support.dashboard_web import password_hash

    decided.store.create_user("padmin_lc2", password_hash("lao-cai-admin-pw-2"), "province_admin",
                              Scope.of(provinces=["10"]))
    pa = client_for(app, "padmin_lc")
    page = pa.get("/admin/officers")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "IC7 Nội Bài–Lào Cai" in html and "Chốt Gia Lâm" not in html
    assert 'data-test-id="nav-admin-officers"' in html
    token = page_token(pa, "/admin/officers")
    refused = pa.post("/admin/officers", data={"checkpoint": "HN-GIA", "officer": "X-1", "name": "A", "role": "police",
                                               "pin": "482159", "csrf_token": token})
    assert refused.status_code == 403 and "nằm ngoài tỉnh của bạn" in refused.get_data(as_text=True)
    # Two admins of one province: neither removes nor changes the other; the national admin can.
    token = page_token(pa, "/admin/users")
    peer = pa.post("/admin/users/padmin_lc2/remove", data={"csrf_token": token})
    assert peer.status_code == 403 and "ngang cấp" in peer.get_data(as_text=True)
    assert pa.post("/admin/users/padmin_lc2/access", data={"role": "viewer", "scope": "province:10",
                                                          "csrf_token": token}).status_code == 403
    assert decided.store.get_user("padmin_lc2") is not None
    admin = client_for(app, "admin")
    assert admin.post("/admin/users/padmin_lc2/remove", data={"csrf_token": page_token(admin, "/admin/users")}).status_code == 200


def test_destructive_buttons_ask_first(app: Any) -> None:
    html = client_for(app, "admin").get("/admin/users").get_data(as_text=True)
    first = html.split('data-test-id="remove-user-sup_hn"')[0].rsplit("<", 1)[1]
    assert first.startswith("summary")  # the first click only opens the question
    assert 'data-test-id="confirm-remove-user-sup_hn"' in html and "Xoá hẳn tài khoản sup_hn?" in html
    html = client_for(app, "admin").get("/admin/devices").get_data(as_text=True)
    assert html.split('data-test-id="remove-u-ic7-1"')[0].rsplit("<", 1)[1].startswith("summary")


def test_vietnamese_pages_say_things_in_words(app: Any, decided: Seeded) -> None:
    from protocol.words import reason_words

    lc = client_for(app, "sup_lc")
    page = lc.get("/checkpoints/IC7").get_data(as_text=True)
    assert "Cho qua: Cho qua:" not in page and "Cho qua: có giấy xác nhận tiêm chủng" in page
    report = lc.get("/reports").get_data(as_text=True)
    assert "giờ Việt Nam (UTC+7)" in report and "Asia/Ho_Chi_Minh" not in report
    for code in ("prefix", "base45"):
        words = reason_words(code, "vi") or ""
        assert words and "Base45" not in words and "HC1" not in words, words
    metrics = lc.get("/metrics")
    assert metrics.status_code == 403 and "cần mã truy cập" in metrics.get_json()["error"]
    devices = lc.get("/devices").get_data(as_text=True)
    assert "≥ 0<" not in devices
    pa = client_for(app, "padmin_lc")
    refused = pa.post("/admin/users", data={"username": "x_new", "password": "a-long-password-1", "role": "viewer",
                                            "scope": "province:01", "language": "vi",
                                            "csrf_token": page_token(pa, "/admin/users")})
    assert refused.status_code == 403 and "Hà Nội (01)" in refused.get_data(as_text=True)


def test_every_province_tile_touches_its_true_nearest_neighbour() -> None:
    import math

    from dashboard.web.data.province_positions import POSITIONS
    from dashboard.web.data.tilemap import CELL_LAT, CELL_LON, layout

    cells = layout()
    assert len(set(cells.values())) == len(cells) == 63
    for code, (lat, lon) in POSITIONS.items():
        nearest = min((k for k in POSITIONS if k != code),
                      key=lambda k: math.hypot((lat - POSITIONS[k][0]) / CELL_LAT, (lon - POSITIONS[k][1]) / CELL_LON))
        (a, b), (c, d) = cells[code], cells[nearest]
        assert max(abs(a - c), abs(b - d)) == 1, (code, nearest)  # side by side or corner to corner


def test_the_audit_page_says_details_in_words(app: Any) -> None:
    lc = client_for(app, "sup_lc")
    assert lc.get("/export/by_checkpoint.csv").status_code == 200
    assert lc.get("/export/reasons.xlsx?area=checkpoint:IC7&from=2026-11-25").status_code == 200
    admin = client_for(app, "admin")
    token = page_token(admin, "/admin/users")
    assert admin.post("/admin/users/view_lc/access", data={"role": "supervisor", "scope": "province:10 checkpoint:IC7",
                                                          "csrf_token": token}).status_code == 200
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert "Khu vực: toàn bộ phạm vi của tài khoản" in page and "Khu vực: Chốt IC7; Khoảng thời gian: 25/11/2026" in page
    assert "Người xem (Lào Cai (10)) → Giám sát (Lào Cai (10), Chốt IC7)" in page
    for raw in ("area all", "period ", "province:10", "checkpoint:IC7", "-> supervisor"):
        assert raw not in page.split('data-test-id="audit-table"')[1], raw


def test_a_units_own_counter_equals_its_row_on_the_checkpoint_page(tmp_path: Path) -> None:
    """A real outbox records verdicts, decisions and a manual check; its events go through the
    central's parser into the store; the unit's screen counter and the page's row agree."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from dashboard.ingest import parse_event
    from scanner.outbox import COUNTED_KINDS, RESULTS, Outbox
    from tests.support.dashboard_web import seed

    seeded = seed(tmp_path / "central.db")
    try:
        box = Outbox(tmp_path / "outbox.sqlite")
        at = seeded.now
        verdicts = [("green", "complete_series")] * 4 + [("yellow", "partial")] + [("red", "signature")] * 2
        seqs = [box.record({"result": r, "reason": why, "policy": "vn-2021", "trust_version": 7}, at)
                for r, why in verdicts]
        box.record({"kind": "decision", "outcome": "turned_back", "reason": "no_proof", "officer": "CA-1",
                    "follows_seq": seqs[-1], "follows_result": "red", "follows_reason": "signature",
                    "policy": "vn-2021", "trust_version": 7}, at)
        box.record({"kind": "decision", "outcome": "let_through", "reason": "paper_proof", "officer": "CA-1",
                    "policy": "vn-2021", "trust_version": 7}, at)
        events = [parse_event("IC7", "u-ic7-2", e.payload(), at) for e in box.pending(100)]
        assert seeded.store.record_events(events) == len(events) == 9
        day = at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
        counter = {**box.counts_today(day), **box.counts_today(day, COUNTED_KINDS)}
        box.close()
        app = make_app(seeded, tmp_path / "instance")
        row = next(u for u in client_for(app, "sup_lc").get("/api/v1/checkpoints/IC7").get_json()["by_device"]
                   if u["device"] == "u-ic7-2")
        assert {k: row[k] for k in RESULTS} == {k: counter[k] for k in RESULTS} == {"green": 4, "yellow": 1, "red": 2}
        assert (row["decisions"], row["manual_checks"]) == (counter["decision"], counter["manual"]) == (1, 1)
        assert dt.date.fromisoformat(client_for(app, "sup_lc").get("/api/v1/checkpoints/IC7").get_json()["today"]["date"]) == day
    finally:
        seeded.close()


def test_scope_fields_offer_their_codes_with_names(app: Any) -> None:
    html = client_for(app, "padmin_lc").get("/admin/users").get_data(as_text=True)
    codes = html.split('data-test-id="scope-codes"')[1].split("</ul>")[0]
    assert "<code>province:10</code>: Lào Cai (10)" in codes and "<code>checkpoint:IC7</code>: IC7 Nội Bài–Lào Cai" in codes
    assert "province:01" not in codes  # only what this admin may grant
    assert 'title="Lào Cai (10)"' in html  # each account's field says its scope in words
