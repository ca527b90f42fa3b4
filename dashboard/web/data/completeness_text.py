"""The completeness line shown beside every count, in the reader's language.

"Đầy đủ đến 14:05 cho 37/38 thiết bị; ic7-lane1 mất kết nối từ 13:40, còn 12 kết quả chờ gửi."
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from dashboard.completeness import Completeness, UnitLag, as_dict
from dashboard.web.i18n import current_language, translate

MAX_NAMED = 5  # lagging units named in the sentence; the API lists them all


def _when(value: datetime, tz: ZoneInfo, at: datetime) -> str:
    local = value.astimezone(tz)
    # The day is said only when it is not the day of the assessment.
    return local.strftime("%H:%M") if local.date() == at.astimezone(tz).date() else local.strftime("%H:%M %d/%m/%Y")


def _lag_text(u: UnitLag, tz: ZoneInfo, at: datetime, lang: str | None) -> str:
    since = _when(u.since, tz, at) if u.since else "–"
    key = {"offline": "lag_offline", "sending": "lag_sending", "never_seen": "lag_never_seen"}.get(u.state, "lag_quiet")
    text = translate(key, lang, device=u.device, since=since)
    if u.pending:
        text += translate("lag_pending", lang, n=u.pending)
    return text


def describe(c: Completeness, tz: ZoneInfo, lang: str | None = None) -> str:
    """One sentence: final, or complete up to when for how many units, and who still owes what."""
    lang = lang or current_language()
    if c.units == 0:
        return translate("complete_no_units", lang)
    if c.final:
        return translate("complete_final", lang, units=c.units)
    head = translate("complete_to", lang, time=_when(c.complete_to, tz, c.at), n=c.complete_units, units=c.units)
    if not c.lagging:
        return head + translate("complete_running", lang)
    # The units owing most come first; past a few the rest are counted, not named.
    ordered = sorted(c.lagging, key=lambda u: (-(u.pending or 0), u.device))
    named = [_lag_text(u, tz, c.at, lang) for u in ordered[:MAX_NAMED]]
    rest = ordered[MAX_NAMED:]
    if rest:
        named.append(translate("lag_more", lang, n=len(rest), pending=sum(u.pending or 0 for u in rest)))
    return head + "; " + "; ".join(named) + "."


def completeness_dict(c: Completeness, tz: ZoneInfo, lang: str | None = None) -> dict[str, Any]:
    """The API form of a completeness with its sentence."""
    return {**as_dict(c), "text": describe(c, tz, lang)}
