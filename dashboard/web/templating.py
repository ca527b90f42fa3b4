"""Template helpers (texts, number and time formats) and the app's error pages."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Any

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from dashboard.scope import Scope
from dashboard.store import StoreUnavailable
from dashboard.web.auth import csrf_token, error_response
from dashboard.web.i18n import current_language, entry_words, reason_text, translate, tz_name
from dashboard.web.data.provinces import province_label
from dashboard.web.data.snapshots import duration_text
from dashboard.web.state import settings

logger = logging.getLogger(__name__)

_STATUS_KEYS = {400: "bad_request", 401: "login_required", 403: "forbidden", 404: "not_found"}


def number(value: Any) -> str:
    """An integer with thousands separators in the reader's convention (1.234 vi, 1,234 en)."""
    if value is None:
        return "–"
    text = f"{int(value):,}"
    return text.replace(",", ".") if current_language() == "vi" else text


def percent(value: float | None) -> str:
    """A rate as a percentage with one decimal in the reader's convention."""
    if value is None:
        return "–"
    text = f"{value * 100:.1f}%"
    return text.replace(".", ",") if current_language() == "vi" else text


def local_time(value: str | datetime | None, fmt: str = "%H:%M:%S %d/%m/%Y") -> str:
    """An ISO UTC time (or datetime) shown in the configured timezone."""
    if not value:
        return "–"
    when = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return when.astimezone(settings().timezone).strftime(fmt)


def day(value: str | None) -> str:
    """An ISO date (YYYY-MM-DD) as people in Vietnam write it (DD/MM/YYYY)."""
    if not value:
        return "–"
    try:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    except ValueError:
        return value


def scope_words(scope: Scope) -> str:
    """A user's scope as a supervisor says it: "Toàn quốc", "Phú Thọ (25), Chốt IC7"."""
    if scope.everything:
        return translate("scope_all")
    parts = [province_label(p) for p in sorted(scope.provinces)]
    parts += [translate("scope_district", code=d) for d in sorted(scope.districts)]
    parts += [translate("scope_checkpoint", code=c) for c in sorted(scope.checkpoints)]
    return ", ".join(parts) or "–"


def _role(code: str) -> str:
    key = f"role_{code}"
    text = translate(key)
    return code if text == key else text


def _entries(text: str) -> str:
    return ", ".join(entry_words(e.strip()) for e in text.split(",") if e.strip()) or "–"


def audit_detail(text: str) -> str:
    """An audit entry's detail, stored in the log's stable form ("role supervisor, scope
    checkpoint:IC7", "area all, period ..", "viewer province:10 -> supervisor province:10"), said
    in the reader's words; other details as they are."""
    if m := re.fullmatch(r"role (\w+), scope (.*)", text):
        return f"{translate('role')}: {_role(m[1])}; {translate('scope')}: {_entries(m[2])}"
    if m := re.fullmatch(r"role (\w+)", text):
        return f"{translate('role')}: {_role(m[1])}"
    if m := re.fullmatch(r"(\w+) (.*) -> (\w+) (.*)", text):
        return f"{_role(m[1])} ({_entries(m[2])}) → {_role(m[3])} ({_entries(m[4])})"
    if m := re.fullmatch(r"slowed \w+, failures (\d+) here, (\d+) from address, (\d+) addresses, wait (\d+) s", text):
        return translate("login_attack_detail", here=m[1], address=m[2], addresses=m[3], wait=m[4])
    if m := re.fullmatch(r"checkpoint (\S+)", text):
        return entry_words(f"checkpoint:{m[1]}")
    if m := re.fullmatch(r"area (\S+), period (.*)\.\.(.*)", text):
        period = f"{day(m[2]) if m[2] else '…'} – {day(m[3]) if m[3] else '…'}" if m[2] or m[3] else translate("today")
        area = translate("audit_area_all") if m[1] == "all" else entry_words(m[1])
        return f"{translate('report_area')}: {area}; {translate('period')}: {period}"
    return text


def decimal(value: float | None, digits: int = 1) -> str:
    """A measurement with `digits` decimals in the reader's convention."""
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if current_language() == "vi" else text


def install_templating(app: Flask) -> None:
    """Register template globals, filters and error handlers on `app`."""
    app.jinja_env.globals.update(
        t=translate,
        reason_text=reason_text,
        csrf_token=csrf_token,
        current_language=current_language,
    )
    app.jinja_env.filters.update(
        number=number, percent=percent, localtime=local_time, duration=duration_text, decimal=decimal,
        province=province_label, day=day, scope_words=scope_words, tz_name=tz_name,
        audit_detail=audit_detail, entry_words=entry_words,
    )

    @app.context_processor
    def user_context() -> dict[str, Any]:
        """Every template sees the logged-in user (or None)."""
        return {"user": g.get("user")}

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(e: StoreUnavailable) -> Any:
        """The database is away (PostgreSQL restarting, network): say so, never a stack trace."""
        logger.warning("store unavailable on %s: %s", request.path, e)
        response = error_response(503, translate("store_unavailable"))
        response.headers["Retry-After"] = "10"
        return response

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        """Aborts (401, 403, 404...) answered with a readable reason in the reader's language."""
        key = _STATUS_KEYS.get(e.code or 500)
        message = translate(key) if key else (e.description or e.name)
        return error_response(e.code or 500, message)
