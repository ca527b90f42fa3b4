"""Exports (CSV, XLSX), the daily report, the tile map, comparisons, province admins, the audit log.

Every download is read back and compared with the JSON API, which serves the same snapshot as
the page; scope is checked by reading what other provinces' accounts get.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from dashboard.scope import Scope
from dashboard.web import create_app
from dashboard.web.data.provinces import PROVINCES
from dashboard.web.data.tilemap import MISSING_COLOURS, NO_DATA, map_svg
from tests.support.central import Central
from tests.support.dashboard_web import ACCOUNTS, Seeded, login, make_app, page_token, password_hash
from tests.support.dashboard_web import seeded  # noqa: F401 - fixture
from tests.test_dashboard_decisions import decide
from tests.test_dashboard_web_admin import central  # noqa: F401 - fixture

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def app(seeded: Seeded, tmp_path: Path) -> Any:
    return make_app(seeded, tmp_path / "instance")


def client_for(app: Any, role: str) -> Any:
    c = app.test_client()
    assert login(c, role).status_code == 302
    return c


def csv_table(body: bytes) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of an exported CSV, which starts with its header row (after the BOM
    Excel needs): no title lines above it."""
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))
    assert rows and all(rows[0]) and [] not in rows
    return rows[0], rows[1:]


def xlsx_table(body: bytes) -> tuple[list[str], list[Any], list[list[Any]]]:
    book = openpyxl.load_workbook(io.BytesIO(body))
    ws = book.worksheets[0]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    blank = next(i for i, r in enumerate(rows) if all(v is None for v in r))
    return [r[0] for r in rows[:blank]], rows[blank + 1], rows[blank + 2:]


@pytest.mark.parametrize("role", ["view_lc", "sup_hn", "padmin_lc", "admin"])
def test_csv_and_xlsx_of_every_overview_table_equal_the_api(app: Any, role: str) -> None:
    c = client_for(app, role)
    api = c.get("/api/v1/overview").get_json()
    for table, key in (("by_checkpoint", "by_checkpoint"), ("by_province", "by_province")):
        want = [[g["label"], g["total"], g["green"], g["yellow"], g["red"]] for g in api[key]]
        header, rows = csv_table(c.get(f"/export/{table}.csv").get_data())
        assert header[0] in ("Chốt", "Tỉnh/thành")
        assert header[5:] == ["Tỷ lệ cho qua (xanh + vàng) (%)", "Tỷ lệ hợp lệ đầy đủ (chỉ xanh) (%)",
                              "Quyết định của cán bộ", "Kiểm tra thủ công"]
        assert [[r[0], *map(int, r[1:5])] for r in rows] == want
        assert [float(r[5]) for r in rows] == [round(g["pass_rate"] * 100, 1) for g in api[key]]
        assert [float(r[6]) for r in rows] == [round(g["green_rate"] * 100, 1) for g in api[key]]
        assert [[int(r[7]), int(r[8])] for r in rows] == [[g["decisions"], g["manual_checks"]] for g in api[key]]
        resp = c.get(f"/export/{table}.xlsx")
        assert resp.mimetype == XLSX and "attachment" in resp.headers["Content-Disposition"]
        lines, header, rows = xlsx_table(resp.get_data())
        assert lines[1] == api["completeness"]["period"]["text"]  # titles stay in the workbook
        assert [r[:5] for r in rows] == want
        assert [r[5] for r in rows] == pytest.approx([g["pass_rate"] for g in api[key]])
    _, rows = csv_table(c.get("/export/reasons.csv").get_data())
    assert sum(int(r[2]) for r in rows) == sum(r["count"] for r in api["reasons"])
    _, _, rows = xlsx_table(c.get("/export/timeseries.xlsx").get_data())
    assert sum(r[1] for r in rows) == api["period"]["total"]


def test_exports_stay_inside_the_scope_and_keep_vietnamese(app: Any) -> None:
    hn = client_for(app, "sup_hn")
    body = hn.get("/export/by_checkpoint.csv").get_data().decode("utf-8")
    assert "Chốt Gia Lâm" in body and "IC7" not in body
    _, _, rows = xlsx_table(client_for(app, "sup_lc").get("/export/by_checkpoint.xlsx").get_data())
    assert [r[0] for r in rows] == ["IC7 Nội Bài–Lào Cai"]
    _, rows = csv_table(client_for(app, "sup_lc").get("/export/devices.csv").get_data())
    assert sorted(r[0] for r in rows) == ["u-ic7-1", "u-ic7-2"]


def test_a_name_that_looks_like_a_formula_stays_text(app: Any, seeded: Seeded) -> None:
    seeded.store.upsert_checkpoint("F1", '=HYPERLINK("http://x.example","bấm")', "080", "10")
    seeded.store.add_device("u-f1", "F1")
    seeded.events("u-f1", "F1", [("green", "complete_series")])
    c = client_for(app, "admin")
    _, rows = csv_table(c.get("/export/by_checkpoint.csv").get_data())
    assert "'=HYPERLINK(\"http://x.example\",\"bấm\")" in [r[0] for r in rows]
    book = openpyxl.load_workbook(io.BytesIO(c.get("/export/by_checkpoint.xlsx").get_data()))
    cells = [row[0] for row in book.worksheets[0].iter_rows() if str(row[0].value).startswith("=HYPER")]
    assert cells and all(cell.data_type == "s" for cell in cells)


def test_the_report_page_api_and_workbook_agree(app: Any, seeded: Seeded) -> None:
    # Yesterday evening (local) too, for a two-day range.
    seeded.events("u-ic7-1", "IC7", [("red", "revoked")] * 3, at=seeded.now - timedelta(hours=20))
    c = client_for(app, "sup_lc")
    day = seeded.now.date().isoformat()
    api = c.get(f"/api/v1/report?area=province:10&from={day}").get_json()
    assert api["totals"]["total"] == 10 == sum(r["total"] for r in api["by_checkpoint"]) == sum(api["hours_total"])
    # 05:00 UTC is 12:00 in Hà Nội: the report's hours are the checkpoint's local time.
    assert api["hours_total"][12] == 10
    assert api["completeness"]["text"].startswith("Đầy đủ đến 12:00 cho 1/2 thiết bị; u-ic7-2 mất kết nối từ 11:00")
    page = c.get(f"/reports?area=province:10&from={day}").get_data(as_text=True)
    assert 'data-test-id="report-cp-IC7"' in page and "Chốt Gia Lâm" not in page
    assert api["completeness"]["text"] in page and 'media="print"' in page
    book = openpyxl.load_workbook(io.BytesIO(c.get(f"/reports.xlsx?area=province:10&from={day}").get_data()))
    summary = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
    assert summary[1][0] == api["completeness"]["text"]
    ic7 = next(r for r in summary if r[0] == "IC7 Nội Bài–Lào Cai")
    assert ic7[2:6] == [10, 5, 2, 3]
    hours = [[c.value for c in row] for row in book["Theo chốt và giờ"].iter_rows()]
    assert next(r for r in hours if r[0] == "IC7 Nội Bài–Lào Cai")[1 + 12] == 10
    yesterday = (seeded.now - timedelta(days=1)).date().isoformat()
    two = c.get(f"/api/v1/report?area=checkpoint:IC7&from={yesterday}&to={day}").get_json()
    assert [d["total"] for d in two["by_day"]] == [3, 10] and two["totals"]["total"] == 13


def test_comparisons_take_the_same_time_of_day_and_the_trend_has_its_days(app: Any, seeded: Seeded) -> None:
    seeded.events("u-hn-1", "HN-GIA", [("green", "complete_series")] * 2, at=seeded.now - timedelta(days=1, hours=1))
    seeded.events("u-hn-1", "HN-GIA", [("green", "complete_series")] * 4, at=seeded.now - timedelta(days=1) + timedelta(hours=2))
    seeded.events("u-hn-1", "HN-GIA", [("red", "revoked")] * 10, at=seeded.now - timedelta(days=7, minutes=30))
    c = client_for(app, "sup_hn")
    cmp = c.get("/api/v1/overview").get_json()["comparison"]
    assert cmp["today"]["total"] == 5
    assert cmp["yesterday"]["total"] == 2  # the later 4 of yesterday come after this time of day
    assert cmp["yesterday"]["change"] == pytest.approx(1.5)
    assert cmp["last_week"]["total"] == 10 and cmp["last_week"]["change"] == pytest.approx(-0.5)
    trend = c.get("/api/v1/overview?trend=30").get_json()["trend"]
    assert trend["days"] == 30 and len(trend["series"]) == 30 and trend["series"][-1]["total"] == 5
    assert trend["series"][-8]["total"] == 10  # the same weekday last week
    week = c.get("/api/v1/overview").get_json()["trend"]
    assert [d["total"] for d in week["series"]] == [0, 0, 0, 0, 0, 6, 5]  # a week ago is the 8th day back


def test_the_map_draws_every_province_and_links_only_those_in_scope(app: Any) -> None:
    admin = client_for(app, "admin").get("/?map=pass").get_data(as_text=True)
    assert admin.count("<rect") >= len(PROVINCES) and 'data-mode="pass"' in admin
    assert admin.count('data-test-id="map-') == len(PROVINCES) + 4  # + the three mode links and the legend
    lc = client_for(app, "sup_lc")
    html = lc.get("/").get_data(as_text=True)
    assert 'href="/provinces/10"' in html and 'href="/provinces/01"' not in html
    assert 'data-province="10" data-total="10"' in html and 'data-province="01" data-total="0"' in html
    page = lc.get("/provinces/10")
    assert page.status_code == 200 and "Lào Cai (10)" in page.get_data(as_text=True)
    assert lc.get("/provinces/01").status_code == 403


def tile(html: str, code: str) -> tuple[str, str]:
    """(data-gap-share, fill) of a province's square on a "missing" map."""
    found = re.search(rf'data-province="{code}" data-total="\d+" data-gap-share="([0-9.]*)"[^>]*><rect [^>]*fill="([^"]+)"',
                      html)
    assert found, code
    return found.group(1), found.group(2)


def test_no_lifted_record_gap_red_is_zero_percent_but_no_red_is_no_data(app: Any) -> None:
    gaps = [{"key": "01", "gap_reds": 2, "gap_lifted": 0, "gap_lifted_share": 0.0},
            {"key": "10", "gap_reds": 0, "gap_lifted": 0, "gap_lifted_share": None}]
    with app.test_request_context():
        html = str(map_svg([], "missing", {"01", "10"}, lambda code: f"/provinces/{code}", gaps))
    assert tile(html, "01") == ("0.0000", MISSING_COLOURS[0]) and tile(html, "10") == ("", NO_DATA)


def test_the_missing_records_map_shades_provinces_by_reds_lifted_on_paper(app: Any, seeded: Seeded) -> None:
    # Lào Cai (10): 4 reds for a record gap, 3 let through on paper proof (75%).
    for _ in range(3):
        decide(seeded, "u-ic7-1", "IC7", "CA-1", "let_through", "paper_proof", ("red", "too_soon_after_dose"))
    seeded.events("u-ic7-1", "IC7", [("red", "incomplete_series")])
    # Hà Nội (01): 4 record-gap reds, 1 lifted on paper (25%); one turned back, and a paper proof
    # after a signature red, which is no record gap and must not count.
    decide(seeded, "u-hn-1", "HN-GIA", "HN-9", "let_through", "paper_proof", ("red", "policy_not_met"))
    decide(seeded, "u-hn-1", "HN-GIA", "HN-9", "turned_back", "no_proof", ("red", "partial_vaccination"))
    decide(seeded, "u-hn-1", "HN-GIA", "HN-9", "let_through", "paper_proof", ("red", "signature"))
    seeded.events("u-hn-1", "HN-GIA", [("red", "policy_not_met")] * 2)
    # TP. Hồ Chí Minh (79): verdicts, but no record-gap red: no data, not 0%.
    seeded.store.upsert_checkpoint("HCM-1", "Chốt Thủ Đức", "079", "79")
    seeded.store.add_device("u-hcm-1", "HCM-1")
    seeded.events("u-hcm-1", "HCM-1", [("green", "complete_series")] * 3 + [("red", "signature")])

    admin = client_for(app, "admin").get("/?map=missing").get_data(as_text=True)
    assert 'data-mode="missing"' in admin
    assert tile(admin, "10") == ("0.7500", MISSING_COLOURS[4])
    assert tile(admin, "01") == ("0.2500", MISSING_COLOURS[2])
    assert tile(admin, "79") == ("", NO_DATA) and 'data-province="79" data-total="4"' in admin
    assert tile(admin, "02") == ("", NO_DATA)  # no checkpoint at all
    assert "Lào Cai: 3/4 · 75.0%" in admin and "TP. Hồ Chí Minh: không có số liệu" in admin
    # Vietnamese first: the mode link and the legend's caption and "no data" key.
    assert ">Nơi thiếu dữ liệu</a>" in admin
    legend = admin[admin.index('data-test-id="map-legend"'):]
    assert legend.index("Tỷ lệ đỏ do thiếu dữ liệu được cho qua nhờ giấy xác nhận") < legend.index("≥ 75%")
    assert "không có số liệu" in legend[:legend.index("</p>")]
    # Every square still links to its province page; the other modes offer this one.
    assert admin.count('data-test-id="map-') == len(PROVINCES) + 4 and 'href="/provinces/79"' in admin
    assert "map=missing" in client_for(app, "admin").get("/?map=pass").get_data(as_text=True)

    # A Lào Cai supervisor sees only Lào Cai's share; Hà Nội is grey and not a link.
    lc = client_for(app, "sup_lc")
    html = lc.get("/?map=missing").get_data(as_text=True)
    assert tile(html, "10") == ("0.7500", MISSING_COLOURS[4])
    assert tile(html, "01") == ("", NO_DATA) and 'href="/provinces/01"' not in html
    assert tile(lc.get("/provinces/10?map=missing").get_data(as_text=True), "10") == ("0.7500", MISSING_COLOURS[4])
    hn = client_for(app, "sup_hn").get("/?map=missing").get_data(as_text=True)
    assert tile(hn, "01") == ("0.2500", MISSING_COLOURS[2]) and tile(hn, "10") == ("", NO_DATA)
    # English second, same figures.
    assert lc.post("/language", data={"lang": "en", "csrf_token": page_token(lc)}).status_code == 302
    english = lc.get("/?map=missing").get_data(as_text=True)
    assert ">Where records are missing</a>" in english and "Share of record-gap reds let through on paper proof" in english
    assert "Hà Nội: no data" in english and tile(english, "10") == ("0.7500", MISSING_COLOURS[4])


def test_a_province_admin_manages_accounts_in_its_province_and_the_audit_log_shows_it(app: Any, seeded: Seeded) -> None:
    pa = client_for(app, "padmin_lc")
    users = pa.get("/admin/users").get_data(as_text=True)
    assert 'data-test-id="user-sup_lc"' in users and 'data-test-id="user-sup_hn"' not in users
    assert '<option value="admin">' not in users
    form = {"username": "lc_viewer2", "password": "viewer-password-2", "role": "viewer", "scope": "province:10",
            "csrf_token": page_token(pa, "/admin/users")}
    assert pa.post("/admin/users", data=form).status_code == 200
    assert seeded.store.get_user("lc_viewer2").scope == Scope.of(provinces=["10"])
    assert pa.post("/admin/users/lc_viewer2/remove", data={"csrf_token": form["csrf_token"]}).status_code == 200
    assert seeded.store.get_user("lc_viewer2") is None
    pa.get("/export/by_checkpoint.csv")
    client_for(app, "sup_lc").get("/reports.xlsx?area=checkpoint:IC7")  # a supervisor's export, in the province
    entries = pa.get("/api/v1/audit").get_json()["entries"]
    assert (entries[0]["actor"], entries[0]["action"], entries[0]["province"]) == ("sup_lc", "report", "10")
    actions = [e["action"] for e in entries[1:]]
    assert actions == ["export", "user_removed", "user_created"]
    # The Hà Nội side sees none of it; the national admin sees all of it.
    hn_admin = Scope.of(provinces=["01"])
    seeded.store.create_user("padmin_hn", password_hash("ha-noi-admin-pw-1"), "province_admin", hn_admin)
    hn = app.test_client()
    assert login(hn, "padmin_hn", "ha-noi-admin-pw-1").status_code == 302
    assert hn.get("/api/v1/audit").get_json()["entries"] == []
    everything = client_for(app, "admin").get("/api/v1/audit").get_json()["entries"]
    assert [e["action"] for e in everything[-3:]] == actions
    assert {e["actor"] for e in everything} == {"padmin_lc", "sup_lc"}
    page = client_for(app, "admin").get("/admin/audit").get_data(as_text=True)
    assert "tạo tài khoản" in page and "lc_viewer2" in page


def test_a_province_admin_registers_a_unit_in_its_province_only(central: Central, seeded: Any) -> None:  # noqa: F811
    password, role, scope = ACCOUNTS["padmin_lc"]
    central.store.create_user("padmin_lc", password_hash(password), role, scope)
    central.store.upsert_checkpoint("HN-GIA", "Chốt Gia Lâm", "004", "01")
    app = create_app(central.config, {"TESTING": True, "SECRET_KEY": "pa-test-key"})
    c = app.test_client()
    assert login(c, "padmin_lc").status_code == 302
    token = page_token(c, "/admin/devices")
    ok = c.post("/admin/devices", data={"device": "lc-new-1", "checkpoint": "LC-BX", "checkpoint_name": "Bến xe Lào Cai",
                                        "district": "080", "province": "10", "csrf_token": token})
    assert ok.status_code == 200 and central.store.get_device("lc-new-1").province == "10"
    entry = central.store.audit_log(Scope.of(provinces=["10"]))[0]
    assert (entry.actor, entry.action, entry.target, entry.province) == ("padmin_lc", "device_added", "lc-new-1", "10")
    assert c.post("/admin/devices/lc-new-1/remove", data={"csrf_token": token}).status_code == 200
    assert central.store.get_device("lc-new-1") is None
    assert central.store.audit_log(Scope.all())[0].action == "device_removed"


def test_the_checkpoint_and_devices_pages_offer_their_tables(app: Any) -> None:
    c = client_for(app, "sup_lc")
    page = c.get("/checkpoints/IC7").get_data(as_text=True)
    link = "/export/reasons.csv?area=checkpoint:IC7"
    assert link in page and 'data-test-id="completeness-checkpoint"' in page
    _, rows = csv_table(c.get(link).get_data())
    api = c.get("/api/v1/checkpoints/IC7").get_json()
    assert sorted(int(r[2]) for r in rows) == sorted(r["count"] for r in api["reasons"])
    assert "/export/devices.xlsx" in c.get("/devices").get_data(as_text=True)
    assert client_for(app, "sup_hn").get(link).status_code == 403


def test_changing_an_accounts_role_and_scope_is_bounded_and_audited(app: Any, seeded: Seeded) -> None:
    pa = client_for(app, "padmin_lc")
    token = page_token(pa, "/admin/users")
    ok = pa.post("/admin/users/view_lc/access", data={"role": "supervisor", "scope": "province:10", "csrf_token": token})
    assert ok.status_code == 200 and seeded.store.get_user("view_lc").role == "supervisor"
    for form in ({"role": "admin", "scope": "all"}, {"role": "viewer", "scope": "province:10, province:01"}):
        assert pa.post("/admin/users/view_lc/access", data={**form, "csrf_token": token}).status_code == 403
    assert pa.post("/admin/users/sup_hn/access", data={"role": "viewer", "scope": "province:10",
                                                     "csrf_token": token}).status_code == 403
    assert pa.post("/admin/users/padmin_lc/access", data={"role": "province_admin", "scope": "province:10 province:01",
                                                        "csrf_token": token}).status_code == 400  # not one's own
    assert seeded.store.get_user("view_lc").scope == Scope.of(provinces=["10"])
    assert seeded.store.get_user("sup_hn").scope == Scope.of(provinces=["01"])
    log = seeded.store.audit_log(Scope.of(provinces=["10"]))
    entry = next(e for e in log if e.action == "user_scope_changed")
    assert (entry.action, entry.target, entry.detail) == (
        "user_scope_changed", "view_lc", "viewer province:10 -> supervisor province:10")
    # The three refused tries are on record too, newest first.
    assert [e.target for e in log if e.action == "refused"] == [
        "POST /admin/users/sup_hn/access", "POST /admin/users/view_lc/access", "POST /admin/users/view_lc/access"]
    admin = client_for(app, "admin")
    token = page_token(admin, "/admin/users")
    assert admin.post("/admin/users/sup_hn/access", data={"role": "viewer", "scope": "province:01 checkpoint:IC7",
                                                        "csrf_token": token}).status_code == 200
    assert seeded.store.get_user("sup_hn").scope == Scope.of(provinces=["01"], checkpoints=["IC7"])
