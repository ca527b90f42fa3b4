"""The daily report of an area: totals by checkpoint and local hour, reasons, device health and
completeness, for a chosen day or range of days (Asia/Ho_Chi_Minh), as a page and as sheets.

The area is checked against the user's scope here: a report never reaches outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dashboard.completeness import assess
from dashboard.scope import Scope
from dashboard.store import Counts, Store
from dashboard.web.data.completeness_text import completeness_dict
from dashboard.web.data.provinces import province_label
from dashboard.web.data.snapshots import Period, WebSettings, day_period, device_dict, local_today
from dashboard.web.data.spreadsheet import Sheet
from dashboard.web.i18n import entry_words, reason_text, translate, tz_name

MAX_REPORT_DAYS = 31


class ReportError(ValueError):
    """A report request cannot be served; the message says why (in the reader's language)."""


class AreaOutsideScope(ReportError):
    """The area asked for lies outside the user's scope."""


@dataclass(frozen=True)
class Area:
    """What a report covers: a `scope` inside the user's, its entry (`all`, `province:25`...) and label."""

    entry: str
    label: str
    scope: Scope


def parse_range(start: str | None, end: str | None, settings: WebSettings, now: datetime) -> Period:
    """Local days `from`..`to` (default today): never reversed, longer than a month, or in the future."""
    today = local_today(settings, now)
    try:
        first = date.fromisoformat(start.strip()[:10]) if start else today
        last = date.fromisoformat(end.strip()[:10]) if end else first
    except ValueError:
        raise ReportError(translate("bad_range") + " YYYY-MM-DD") from None
    if last < first:
        raise ReportError(f"{translate('bad_range')} {translate('range_reversed', first=first, last=last)}")
    if (last - first).days + 1 > MAX_REPORT_DAYS:
        raise ReportError(f"{translate('bad_range')} {translate('range_too_long', n=MAX_REPORT_DAYS)}")
    if last > today:
        raise ReportError(f"{translate('bad_range')} {translate('range_future', today=today)}")
    return day_period(first, last, settings.timezone)


def parse_area(entry: str | None, user_scope: Scope, store: Store) -> Area:
    """The area `all` (the user's whole scope), `province:<code>`, `district:<code>` or
    `checkpoint:<id>`; AreaOutsideScope when it is not wholly inside the user's scope."""
    entry = (entry or "all").strip()[:80]
    if entry == "all":
        return Area("all", translate("report_all") if not user_scope.everything else "Việt Nam", user_scope)
    kind, _, code = entry.partition(":")
    code = code.strip()
    if kind not in ("province", "district", "checkpoint") or not code:
        raise ReportError(f"{translate('bad_area')} {translate('area_unknown', area=entry)}")
    outside = AreaOutsideScope(f"{translate('bad_area')} {translate('area_outside_scope', area=entry_words(entry))}")
    visible = store.list_checkpoints(user_scope)
    if kind == "province":
        if not (user_scope.everything or code in user_scope.provinces):
            raise outside
        return Area(entry, province_label(code), Scope.of(provinces=[code]))
    if kind == "checkpoint":
        found = [c for c in visible if c.id == code]
        if not found:
            raise outside  # the same answer whether it exists elsewhere or not at all
        return Area(entry, found[0].name, Scope.of(checkpoints=[code]))
    # A district is inside the scope when every checkpoint of it is visible to the user.
    every = [c.id for c in store.list_checkpoints(Scope.of(districts=[code]))]
    mine = {c.id for c in visible}
    if not (user_scope.everything or code in user_scope.districts or (every and set(every) <= mine)):
        raise outside
    return Area(entry, code, Scope.of(districts=[code]))


def _hours_by_checkpoint(store: Store, scope: Scope, period: Period, settings: WebSettings) -> dict[str, list[int]]:
    """Per checkpoint with verdicts in the period, the verdicts of each local hour of day (0-23)."""
    tz = settings.timezone
    if period.since.astimezone(tz).utcoffset() == period.until.astimezone(tz).utcoffset():
        # One query: hours counted from the local midnight are the local hours of the day.
        return store.verdicts_by_hour_of_day(scope, period.since, period.until)
    out: dict[str, list[int]] = {}  # a change of clocks in the period (summer time): per local hour
    for cp, buckets in store.timeseries_by_checkpoint(scope, period.since, period.until, 3600).items():
        hours = out.setdefault(cp, [0] * 24)
        for b in buckets:
            hours[b.start.astimezone(tz).hour] += b.counts.total
    return out


def report(store: Store, area: Area, period: Period, settings: WebSettings, now: datetime) -> dict[str, Any]:
    """Everything the daily report shows, JSON-ready."""
    scope = area.scope
    checkpoints = {c.id: c for c in store.list_checkpoints(scope)}
    groups = {g.key: g.counts for g in store.totals_by(scope, period.since, period.until, "checkpoint")}
    hours = _hours_by_checkpoint(store, scope, period, settings)
    total = Counts(*(sum(getattr(c, kind) for c in groups.values())
                     for kind in ("green", "yellow", "red", "decision", "manual")))
    devices = store.list_devices(scope)
    days = store.timeseries(scope, period.since, period.until, 86400)
    rows = []
    for cp_id, cp in checkpoints.items():
        counts = groups.get(cp_id, Counts())
        rows.append({"id": cp_id, "name": cp.name, "province": cp.province, "province_label": province_label(cp.province),
                     "district": cp.district, **counts.as_dict(), "hours": hours.get(cp_id, [0] * 24)})
    return {
        "area": {"entry": area.entry, "label": area.label},
        "from": period.first.isoformat(), "to": period.last.isoformat(),
        "timezone": str(settings.timezone),
        "generated_at": now.isoformat().replace("+00:00", "Z"),
        "totals": total.as_dict(),
        "by_checkpoint": rows,
        "hours_total": [sum(r["hours"][h] for r in rows) for h in range(24)],
        "by_day": [{"date": b.start.astimezone(settings.timezone).date().isoformat(), **b.counts.as_dict()}
                   for b in days],
        "reasons": [{"result": r.result, "reason": r.reason, "text": reason_text(r.reason), "count": r.count}
                    for r in store.reasons(scope, period.since, period.until) if r.result != "green"],
        "devices": [device_dict(d, now, settings) for d in devices],
        "completeness": completeness_dict(assess(devices, period.since, period.until, now, settings.offline_alarm_s,
                                                         settings.unit_report_interval_s),
                                          settings.timezone),
    }


RATE_COLUMNS = frozenset({5, 6})  # the two rates in a row of label + `counts_cells`


def counts_columns() -> list[str]:
    """Header of `counts_cells`: verdicts, both rates, officer decisions and manual checks."""
    t = translate
    return [t("total"), t("green"), t("yellow"), t("red"), t("pass_rate"), t("green_rate"), t("decisions"),
            t("manual_checks")]


def counts_cells(d: dict[str, Any]) -> list[Any]:
    """The cells of a `Counts.as_dict()` in the order of `counts_columns`."""
    return [d["total"], d["green"], d["yellow"], d["red"], d["pass_rate"], d["green_rate"], d["decisions"],
            d["manual_checks"]]


def report_sheets(data: dict[str, Any], settings: WebSettings) -> list[Sheet]:
    """The report as workbook sheets: summary by checkpoint, by hour, by day, reasons, devices."""
    t = translate
    head = [f"{t('report_title')} · {data['area']['label']} · {_days(data)}", data["completeness"]["text"],
            t("report_generated", time=local_text(data["generated_at"], settings), tz=tz_name(str(settings.timezone)))]
    summary = Sheet(t("table_by_checkpoint"), head, [t("checkpoint"), t("province"), *counts_columns()],
                    percent_columns=frozenset(c + 1 for c in RATE_COLUMNS))
    for r in data["by_checkpoint"]:
        summary.rows.append([r["name"], r["province_label"], *counts_cells(r)])
    summary.rows.append([t("total"), "", *counts_cells(data["totals"])])
    by_hour = Sheet(t("report_by_hour"), head, [t("checkpoint"), *[f"{h:02d}" for h in range(24)], t("total")])
    for r in data["by_checkpoint"]:
        by_hour.rows.append([r["name"], *r["hours"], sum(r["hours"])])
    by_hour.rows.append([t("total"), *data["hours_total"], sum(data["hours_total"])])
    by_day = Sheet(t("date"), head, [t("date"), *counts_columns()], percent_columns=RATE_COLUMNS)
    for d in data["by_day"]:
        by_day.rows.append([date.fromisoformat(d["date"]), *counts_cells(d)])
    reasons = Sheet(t("table_reasons"), head, [t("result"), t("reason"), t("count")])
    for r in data["reasons"]:
        reasons.rows.append([t(r["result"]), r["text"], r["count"]])
    devices = Sheet(t("report_health"), head, [t("device"), t("checkpoint"), t("state"), t("last_seen"), t("backlog")])
    for d in data["devices"]:
        devices.rows.append([d["id"], d["checkpoint_name"], t(d["state"]) if d["state"] in ("online", "offline") else t("unknown"),
                             local_time(d["last_seen"], settings.timezone), d["backlog"]])
    return [summary, by_hour, by_day, reasons, devices]


def _days(data: dict[str, Any]) -> str:
    first, last = date.fromisoformat(data["from"]), date.fromisoformat(data["to"])
    text = first.strftime("%d/%m/%Y")
    return text if first == last else f"{text} – {last.strftime('%d/%m/%Y')}"


def local_time(value: str | None, tz: ZoneInfo) -> datetime | None:
    """An ISO UTC time as a naive local time (a real date in a spreadsheet), None for none."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(tz).replace(tzinfo=None)


def local_text(value: str | None, settings: WebSettings) -> str:
    """An ISO UTC time as the checkpoint's local time (HH:MM DD/MM/YYYY), '–' for none."""
    if not value:
        return "–"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(settings.timezone).strftime("%H:%M %d/%m/%Y")

