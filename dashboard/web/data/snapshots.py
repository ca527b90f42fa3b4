"""What each page shows, as JSON-ready dicts built from the store for one user's scope.

Pages, the JSON API and the live stream all read these same snapshots, so a number can never
differ between them and scope is applied in one place (every store query takes the Scope).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from dashboard.completeness import assess
from dashboard.decisions import decision_view
from dashboard.scope import Scope
from dashboard.store import Counts, Device, GroupCounts, Store
from dashboard.web.data import comparisons
from dashboard.web.data.completeness_text import completeness_dict
from dashboard.web.i18n import MESSAGES, reason_text, translate
from dashboard.web.data.periods import (  # noqa: F401 - pages and the API read them from here too
    DEFAULT_OFFLINE_ALARM_S, MAX_PERIOD_DAYS, Period, PeriodError, WebSettings, bucket_for, day_period, local_today,
    parse_period,
)
from dashboard.web.data.provinces import province_label

logger = logging.getLogger(__name__)

RECENT_LIMIT = 12  # recent results on a checkpoint page: enough to spot a pattern at a glance


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC text of a datetime, or None."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def _bucket_label(start: datetime, bucket_s: int, multi_day: bool, tz: ZoneInfo) -> str:
    local = start.astimezone(tz)
    if bucket_s >= 86400:
        return local.strftime("%d/%m")
    return local.strftime("%d/%m %H:%M") if multi_day else local.strftime("%H:%M")


def overview(store: Store, scope: Scope, settings: WebSettings, period: Period, now: datetime,
             officers: bool = False, trend_days: int = 7) -> dict[str, Any]:
    """Totals today and in `period`, rates by province and checkpoint, the chart, reasons, alarms.

    Aggregate queries are the expensive part under load, so each figure that can be derived
    from another is: the period's totals are the chart's sum, provinces are summed from
    checkpoints, and today's totals are the period's when the period is today.
    """
    today = day_period(local_today(settings, now), local_today(settings, now), settings.timezone)
    bucket_s = bucket_for(period)
    multi_day = period.first != period.last
    buckets = store.timeseries(scope, period.since, period.until, bucket_s)
    series = [
        {"start": iso(b.start), "label": _bucket_label(b.start, bucket_s, multi_day, settings.timezone),
         **b.counts.as_dict()}
        for b in buckets
    ]
    period_counts = _sum(b.counts for b in buckets)
    today_counts = period_counts if today == period else store.totals(scope, today.since, today.until)
    by_checkpoint = store.totals_by(scope, period.since, period.until, "checkpoint")
    decisions = decisions_snapshot(store, scope, settings, period, officers)
    devices = store.list_devices(scope)
    today_complete = completeness(devices, today, settings, now)
    return {
        "today": {"date": today.first.isoformat(), **today_counts.as_dict()},
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat(), **period_counts.as_dict()},
        "by_province": _by_province(store, scope, by_checkpoint),
        "by_checkpoint": [{"key": g.key, "label": g.label, **g.counts.as_dict()} for g in by_checkpoint],
        "timeseries": {"bucket_s": bucket_s, "buckets": series},
        "reasons": _reasons(store, scope, period),
        "decisions": decisions,
        "alarms": alarms(store, devices, settings, now) + decisions["alarms"],
        "completeness": {"today": today_complete, "period": today_complete if today == period
                         else completeness(devices, period, settings, now)},
        "comparison": comparisons.compare_days(store, scope, settings, now, today_counts),
        "trend": comparisons.trend(store, scope, settings, now, trend_days),
    }


def completeness(devices: list[Device], period: Period, settings: WebSettings, now: datetime) -> dict[str, Any]:
    """How complete the counts of `period` are, with the sentence saying so."""
    return completeness_dict(assess(devices, period.since, period.until, now, settings.offline_alarm_s,
                                    settings.unit_report_interval_s),
                             settings.timezone)


def decisions_snapshot(store: Store, scope: Scope, settings: WebSettings, period: Period,
                       officers: bool) -> dict[str, Any]:
    """Officers' decisions in the period (dashboard.decisions) with readable alarm texts;
    per-officer rows only for supervisors and admins (`officers`)."""
    view = decision_view(store, scope, period.since, period.until, officers=officers,
                         above_area=settings.let_through_above_area, min_decisions=settings.let_through_min_decisions)
    for p in view["by_province"]:
        p["label"] = province_label(p["key"])
    for a in view["alarms"]:
        a["text"] = translate(f"alarm_{a['kind']}", who=a["label"], share=f"{a['share']:.0%}",
                              area=f"{a['area_share']:.0%}", n=a["decisions"])
    return view


def _sum(counts: Iterable[Counts]) -> Counts:
    total = dict.fromkeys(("green", "yellow", "red", "decision", "manual"), 0)
    for c in counts:
        for name in total:
            total[name] += getattr(c, name)
    return Counts(**total)


def _by_province(store: Store, scope: Scope, by_checkpoint: list[GroupCounts]) -> list[dict[str, Any]]:
    """Province totals summed from checkpoint totals, ordered by province code."""
    province_of = {c.id: c.province for c in store.list_checkpoints(scope)}
    grouped: dict[str, list[Counts]] = {}
    for g in by_checkpoint:
        grouped.setdefault(province_of.get(g.key, "?"), []).append(g.counts)
    return [{"key": p, "label": province_label(p), **_sum(counts).as_dict()} for p, counts in sorted(grouped.items())]


def _reasons(store: Store, scope: Scope, period: Period) -> list[dict[str, Any]]:
    """Reasons of verdicts that did not fully pass (red and yellow), largest first."""
    return [
        {"result": r.result, "reason": r.reason, **reason_texts(r.reason), "count": r.count}
        for r in store.reasons(scope, period.since, period.until)
        if r.result != "green"
    ]


def reason_texts(code: str) -> dict[str, str]:
    """Words beside a stable reason code: in the reader's language, and in both (for exports)."""
    return {"text": reason_text(code), "text_vi": reason_text(code, "vi"), "text_en": reason_text(code, "en")}


def _last_contact(device: Device) -> datetime | None:
    """When the unit was last heard from: its last event or online status (a will is the broker's,
    sent after the unit went quiet, so an offline unit was quiet by then at the latest)."""
    if device.state == "offline" and device.status_at is not None and device.last_seen is not None:
        return min(device.last_seen, device.status_at)
    return device.last_seen or device.status_at


def device_dict(device: Device, now: datetime, settings: WebSettings | None = None) -> dict[str, Any]:
    """A unit's status. While it does not report, its values are the last it sent, marked so.

    A silent unit only adds to its backlog (it keeps judging and cannot deliver) and its trust
    bundle only ages (it cannot receive one), so the last known figures are lower bounds and
    the trust age is brought up to `now` whether or not the unit reports.
    """
    offline_after = settings.offline_alarm_s if settings else DEFAULT_OFFLINE_ALARM_S
    contact = _last_contact(device)
    quiet_s = (now - contact).total_seconds() if contact else None
    reporting = device.online and quiet_s is not None and quiet_s < offline_after
    trust_age = device.trust_age_s
    reported_at = device.status_at if device.online else contact
    if trust_age is not None and reported_at is not None:
        # The unit reported its age when it sent the status; it has aged since.
        trust_age += max(0.0, (now - reported_at).total_seconds())
    return {
        "id": device.id,
        "checkpoint": device.checkpoint,
        "checkpoint_name": device.checkpoint_name,
        "district": device.district,
        "province": device.province,
        "state": device.state,
        "reporting": reporting,
        # Backlog, clock, camera and software as of the last report, and how old that is.
        "last_known": not reporting and device.status_at is not None and device.software is not None,
        "values_age_s": None if reported_at is None else max(0.0, (now - reported_at).total_seconds()),
        "last_seen": iso(device.last_seen),
        "last_seen_ago_s": (now - device.last_seen).total_seconds() if device.last_seen else None,
        "status_at": iso(device.status_at),
        "software": device.software,
        "trust_version": device.trust_version,
        "trust_age_s": trust_age,
        "backlog": device.backlog,
        "clock": device.clock,
        "fps": device.fps,
        "temperature_c": device.temperature_c,
        "uptime_s": device.uptime_s,
        "broker": device.broker,
    }


def alarms(store: Store, devices: list[Device], settings: WebSettings, now: datetime) -> list[dict[str, Any]]:
    """Units silent longer than allowed, on a stale trust bundle, or with a wrong clock."""
    latest = store.latest_trust_bundle()
    found: list[dict[str, Any]] = []
    for d in devices:
        base = {"device": d.id, "checkpoint": d.checkpoint, "checkpoint_name": d.checkpoint_name}
        # Offline: nothing heard for offline_alarm_s, whether its last will said so or the
        # broker has not noticed yet (a cut link looks "online" until the keepalive runs out).
        contact = _last_contact(d)
        if contact is not None and (now - contact).total_seconds() >= settings.offline_alarm_s:
            found.append({**base, "kind": "offline", "since": iso(contact), "state": d.state,
                          "backlog_at_least": d.backlog,
                          "text": translate("alarm_offline", device=d.id, since=_local(contact, settings))})
        elif contact is None and (now - d.created_at).total_seconds() >= settings.offline_alarm_s:
            found.append({**base, "kind": "never_seen", "since": iso(d.created_at),
                          "text": translate("alarm_never_seen", device=d.id)})
        info = device_dict(d, now, settings)
        age = info["trust_age_s"]
        behind = (
            latest is not None
            and d.trust_version is not None
            and d.trust_version < latest.version
            and (now - latest.uploaded_at).total_seconds() >= settings.offline_alarm_s
        )
        if (age is not None and age > settings.trust_max_age_s) or behind:
            found.append({**base, "kind": "stale_trust", "trust_version": d.trust_version, "trust_age_s": age,
                          "text": translate("alarm_stale_trust", device=d.id, age=duration_text(age))})
        if settings.clock_alarm and d.clock not in (None, "ok"):
            key = f"clock_{d.clock}"
            clock = translate(key) if key in MESSAGES else d.clock
            found.append({**base, "kind": "clock", "clock": d.clock,
                          "text": translate("alarm_clock", device=d.id, clock=clock)})
    return found


def _local(value: datetime, settings: WebSettings) -> str:
    return value.astimezone(settings.timezone).strftime("%H:%M %d/%m/%Y")


def duration_text(seconds: float | None) -> str:
    """A short readable duration in the request's language ("5 phút", "2 days")."""
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 120:
        return translate("seconds", n=s)
    if s < 7200:
        return translate("minutes", n=s // 60)
    if s < 2 * 86400:
        return translate("hours", n=s // 3600)
    return translate("days", n=s // 86400)


def devices_view(store: Store, scope: Scope, settings: WebSettings, now: datetime) -> dict[str, Any]:
    """Every unit in scope with its health, and the alarms among them."""
    devices = store.list_devices(scope)
    latest = store.latest_trust_bundle()
    today = day_period(local_today(settings, now), local_today(settings, now), settings.timezone)
    return {
        "devices": [device_dict(d, now, settings) for d in devices],
        "alarms": alarms(store, devices, settings, now),
        "latest_trust_version": latest.version if latest else None,
        "completeness": completeness(devices, today, settings, now),
    }


def checkpoint_view(
    store: Store, scope: Scope, checkpoint_id: str, settings: WebSettings, now: datetime, officers: bool = False
) -> dict[str, Any] | None:
    """One checkpoint's units, today's counts and recent results; None if outside the scope."""
    visible = {c.id: c for c in store.list_checkpoints(scope)}
    cp = visible.get(checkpoint_id)
    if cp is None:
        return None
    # Narrowing to this one checkpoint stays inside the user's scope: it was found through it.
    only = Scope.of(checkpoints=[cp.id])
    today = day_period(local_today(settings, now), local_today(settings, now), settings.timezone)
    devices = [d for d in store.list_devices(only) if d.checkpoint == cp.id]
    per_unit = store.counts_by_device(cp.id, today.since, today.until)
    return {
        "checkpoint": {"id": cp.id, "name": cp.name, "district": cp.district, "province": cp.province,
                       "policy": cp.policy},
        "today": {"date": today.first.isoformat(), **store.totals(only, today.since, today.until).as_dict()},
        "devices": [device_dict(d, now, settings) for d in devices],
        # Each unit's own day, to hold against the counter on its screen.
        "by_device": [{"device": d.id, **per_unit.get(d.id, Counts()).as_dict()} for d in devices],
        "reasons": _reasons(store, only, today),
        "recent": [
            {"ts": iso(e.ts), "device": e.device, "result": e.result, "reason": e.reason,
             **reason_texts(e.reason), "policy": e.policy, "trust_version": e.trust_version,
             "outcome": e.outcome, "officer": e.officer if officers else None}
            for e in store.recent_events(only, checkpoint=cp.id, limit=RECENT_LIMIT)
        ],
        "decisions": (decisions := decisions_snapshot(store, only, settings, today, officers)),
        "alarms": alarms(store, devices, settings, now) + decisions["alarms"],
        "completeness": completeness(devices, today, settings, now),
    }


def checkpoints_list(store: Store, scope: Scope) -> list[dict[str, Any]]:
    """The checkpoints a user may open."""
    return [{"id": c.id, "name": c.name, "district": c.district, "province": c.province, "policy": c.policy}
            for c in store.list_checkpoints(scope)]


def trust_view(store: Store, scope: Scope) -> dict[str, Any]:
    """The latest accepted bundle and how many units in scope run each version."""
    latest = store.latest_trust_bundle()
    versions = Counter(d.trust_version for d in store.list_devices(scope))
    return {
        "latest": None if latest is None else {
            "version": latest.version, "issued_at": iso(latest.issued_at),
            "next_update": iso(latest.next_update), "uploaded_at": iso(latest.uploaded_at),
            "uploaded_by": latest.uploaded_by,
        },
        "units_by_version": [
            {"version": v, "units": n}
            for v, n in sorted(versions.items(), key=lambda kv: (kv[0] is None, -(kv[0] or 0)))
        ],
    }
