"""The dashboard's periods of local days, chart buckets and the settings the pages need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dashboard.config import DEFAULT_OFFLINE_AFTER_S

MAX_PERIOD_DAYS = 366
# Chart bucket sizes (seconds, multiples of 60); the smallest that keeps the chart under ~48 bars.
BUCKETS_S: tuple[int, ...] = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_BARS = 48


class PeriodError(ValueError):
    """A requested period could not be understood; the message says why."""


DEFAULT_OFFLINE_ALARM_S = float(DEFAULT_OFFLINE_AFTER_S)


@dataclass(frozen=True)
class WebSettings:
    """The dashboard settings the snapshots need (from the app config)."""

    timezone: ZoneInfo
    offline_alarm_s: float = DEFAULT_OFFLINE_ALARM_S
    unit_report_interval_s: float = 60.0  # the units' status interval: bounds "in flight" (completeness)
    trust_max_age_s: float = 2 * 86400.0
    clock_alarm: bool = True
    let_through_above_area: float = 0.3
    let_through_min_decisions: int = 10


@dataclass(frozen=True)
class Period:
    """Whole local days `first`..`last` and their UTC bounds since <= t < until."""

    first: date
    last: date
    since: datetime
    until: datetime


def local_today(settings: WebSettings, now: datetime) -> date:
    """Today's date in the configured timezone."""
    return now.astimezone(settings.timezone).date()


def day_period(first: date, last: date, tz: ZoneInfo) -> Period:
    """The period of local days first..last inclusive, bounded in UTC."""
    since = datetime.combine(first, time(0), tz).astimezone(timezone.utc)
    until = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(timezone.utc)
    return Period(first, last, since, until)


def parse_period(start: str | None, end: str | None, settings: WebSettings, now: datetime) -> Period:
    """Read `from`/`to` (YYYY-MM-DD, local days); missing ones default to today."""
    today = local_today(settings, now)
    first = _parse_day(start, today)
    last = _parse_day(end, first if start else today)
    if last < first:
        raise PeriodError(f"the period ends ({last}) before it starts ({first})")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise PeriodError(f"the period is longer than {MAX_PERIOD_DAYS} days")
    return day_period(first, last, settings.timezone)


def _parse_day(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise PeriodError(f"{value[:20]!r} is not a date (YYYY-MM-DD)") from None


def bucket_for(period: Period) -> int:
    """The chart bucket size for a period."""
    span = (period.until - period.since).total_seconds()
    for size in BUCKETS_S:
        if span / size <= MAX_BARS:
            return size
    return BUCKETS_S[-1]
