"""Today against yesterday and the same weekday last week, and a 7- or 30-day trend per area."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dashboard.scope import Scope
from dashboard.store import Counts, Store
from dashboard.web.data.periods import WebSettings, day_period, local_today

TREND_DAYS: tuple[int, ...] = (7, 30)


def _change(now_total: int, then_total: int) -> float | None:
    """Relative change of a total (None when there is nothing to compare with)."""
    return None if then_total == 0 else (now_total - then_total) / then_total


def compare_days(store: Store, scope: Scope, settings: WebSettings, now: datetime,
                 today: Counts | None = None) -> dict[str, Any]:
    """Totals of today, yesterday and the same weekday a week ago, with today's change to each.

    Today is compared up to the same local time of day on the earlier days, so a morning is not
    measured against a whole day.
    """
    tz = settings.timezone
    day = local_today(settings, now)
    period = day_period(day, day, tz)
    elapsed = now - period.since
    if today is None:
        today = store.totals(scope, period.since, now)
    out: dict[str, Any] = {"today": {"date": day.isoformat(), **today.as_dict()}}
    for key, back in (("yesterday", 1), ("last_week", 7)):
        earlier = day_period(day - timedelta(days=back), day - timedelta(days=back), tz)
        counts = store.totals(scope, earlier.since, earlier.since + elapsed)
        out[key] = {"date": earlier.first.isoformat(), **counts.as_dict(),
                    "change": _change(today.total, counts.total)}
    return out


def trend(store: Store, scope: Scope, settings: WebSettings, now: datetime, days: int = 7) -> dict[str, Any]:
    """Daily totals of the last `days` local days, today included."""
    if days not in TREND_DAYS:
        days = TREND_DAYS[0]
    last = local_today(settings, now)
    period = day_period(last - timedelta(days=days - 1), last, settings.timezone)
    buckets = store.timeseries(scope, period.since, period.until, 86400)
    return {"days": days, "series": [
        {"date": b.start.astimezone(settings.timezone).date().isoformat(), **b.counts.as_dict()} for b in buckets
    ]}
