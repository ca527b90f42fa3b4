"""Downloads of the dashboard's tables (CSV and XLSX) and the daily report (page, XLSX, JSON).

Every download is built from the same snapshot as the page and the API, within the user's
scope, carries its completeness line, and is written to the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, render_template, request

from dashboard.web import audit
from dashboard.web.data import reports, snapshots
from dashboard.web.auth import error_response
from dashboard.web.i18n import translate
from dashboard.web.province_admin import province_of_user_scope
from dashboard.web.data.provinces import province_label
from dashboard.web.data.spreadsheet import Sheet, csv_bytes, xlsx_bytes
from dashboard.web.state import get_store, now, settings, user_scope
from dashboard.web.views.pages import devices_context, overview_context

logger = logging.getLogger(__name__)

bp = Blueprint("exports", __name__)

FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
# Roles that may download the devices table (as for the devices page).
DEVICE_ROLES = ("admin", "province_admin", "supervisor")


def _counts_header(first: str) -> list[str]:
    return [translate(first), *reports.counts_columns()]


def _overview_table(name: str, data: dict[str, Any]) -> Sheet:
    period = data["period"]
    lines = [f"{translate('table_' + name)} · {period['from']} – {period['to']}", data["completeness"]["period"]["text"]]
    if name in ("by_province", "by_checkpoint"):
        first = "province" if name == "by_province" else "checkpoint"
        return Sheet(translate("table_" + name), lines, _counts_header(first),
                     [[g["label"], *reports.counts_cells(g)] for g in data[name]], reports.RATE_COLUMNS)
    if name == "timeseries":
        # The bucket's start as a real local time (a date in a spreadsheet, ISO in CSV).
        tz = settings().timezone
        return Sheet(translate("table_timeseries"), lines, _counts_header("start"),
                     [[reports.local_time(b["start"], tz), *reports.counts_cells(b)]
                      for b in data["timeseries"]["buckets"]], reports.RATE_COLUMNS)
    return Sheet(translate("table_reasons"), lines, [translate("result"), translate("reason"), translate("count")],
                 [[translate(r["result"]), r["text"], r["count"]] for r in data["reasons"]])


def _devices_table(data: dict[str, Any]) -> Sheet:
    lines = [translate("table_devices"), data["completeness"]["text"]]
    header = [translate("device"), translate("checkpoint"), translate("province"), translate("state"),
              translate("last_seen"), translate("backlog"), translate("software"), translate("trust_version")]
    return Sheet(translate("table_devices"), lines, header, [
        [d["id"], d["checkpoint_name"], province_label(d["province"]), translate(d["state"])
         if d["state"] in ("online", "offline") else translate("unknown"),
         reports.local_time(d["last_seen"], settings().timezone),
         d["backlog"], d["software"],
         d["trust_version"]] for d in data["devices"]
    ])


def _area_overview() -> dict[str, Any]:
    """The overview of the `area` asked for (default: the user's scope); refused outside it."""
    area = reports.parse_area(request.args.get("area"), user_scope(), get_store())
    return overview_context(request.args, area.scope)["data"]


TABLES: dict[str, Callable[[], Sheet]] = {
    "by_province": lambda: _overview_table("by_province", _area_overview()),
    "by_checkpoint": lambda: _overview_table("by_checkpoint", _area_overview()),
    "timeseries": lambda: _overview_table("timeseries", _area_overview()),
    "reasons": lambda: _overview_table("reasons", _area_overview()),
    "devices": lambda: _devices_table(devices_context()["data"]),
}


def _download(body: bytes, fmt: str, filename: str) -> Response:
    resp = Response(body, mimetype=FORMATS[fmt].split(";")[0])
    resp.headers["Content-Type"] = FORMATS[fmt]
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


@bp.get("/export/<table>.<fmt>")
def export_table(table: str, fmt: str) -> Any:
    """One dashboard table as CSV or XLSX, for the period in `from`/`to`, within the user's scope."""
    if table not in TABLES:
        return error_response(404, translate("unknown_table", table=table[:40], tables=", ".join(TABLES)))
    if table == "devices" and g.user.role not in DEVICE_ROLES:
        return error_response(403, translate("forbidden"))
    if fmt not in FORMATS:
        return error_response(400, translate("unknown_format", fmt=fmt[:10]))
    try:
        sheet = TABLES[table]()
    except snapshots.PeriodError as e:
        return error_response(400, f"{translate('bad_period')} {e}")
    period = f"{request.args.get('from', '')}..{request.args.get('to', '')}"
    area = reports.parse_area(request.args.get("area"), user_scope(), get_store())
    audit.record("export", f"{table}.{fmt}", _province_of(area), f"area {area.entry}, period {period}")
    body = csv_bytes(sheet) if fmt == "csv" else xlsx_bytes([sheet])
    return _download(body, fmt, f"chot-{table}.{fmt}")


def _report_data() -> tuple[reports.Area, dict[str, Any]]:
    cfg, at = settings(), now()
    period = reports.parse_range(request.args.get("from"), request.args.get("to"), cfg, at)
    area = reports.parse_area(request.args.get("area"), user_scope(), get_store())
    return area, reports.report(get_store(), area, period, cfg, at)


@bp.app_errorhandler(reports.ReportError)
def _report_refusal(e: reports.ReportError) -> Response:
    """A bad range or area, on every page, API route and export: 403 outside the scope, 400 otherwise."""
    return error_response(403 if isinstance(e, reports.AreaOutsideScope) else 400, str(e))


def _province_of(area: reports.Area) -> str | None:
    """The one province an area lies in, for the audit log (None: national or several)."""
    return province_of_user_scope(get_store(), area.scope)


def _areas() -> list[tuple[str, str]]:
    """The areas a user may choose: all of their scope, each province and checkpoint in it."""
    scope = user_scope()
    cps = get_store().list_checkpoints(scope)
    provinces = sorted({c.province for c in cps if scope.everything or c.province in scope.provinces})
    return ([("all", translate("report_all"))] + [(f"province:{p}", province_label(p)) for p in provinces]
            + [(f"checkpoint:{c.id}", c.name) for c in cps])


@bp.get("/reports")
def report_page() -> Any:
    """The daily report of an area as a page that prints on A4."""
    area, data = _report_data()
    return render_template("report.html", data=data, areas=_areas(), args=request.args)


@bp.get("/reports.xlsx")
def report_xlsx() -> Any:
    """The daily report as an XLSX workbook (one sheet per table)."""
    area, data = _report_data()
    audit.record("report", f"{area.entry} {data['from']}..{data['to']}", _province_of(area))
    return _download(xlsx_bytes(reports.report_sheets(data, settings())), "xlsx",
                     f"chot-report-{data['from']}-{data['to']}.xlsx")


@bp.get("/api/v1/report")
def report_api() -> Any:
    """The daily report as JSON (the same figures as the page and the workbook); logged like the workbook."""
    area, data = _report_data()
    audit.record("report", f"{area.entry} {data['from']}..{data['to']} (JSON)", _province_of(area))
    return data
