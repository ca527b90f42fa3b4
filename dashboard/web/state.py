"""Per-request access to the store, the settings and the clock of the running app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, g

from dashboard.scope import Scope
from dashboard.store import Store, open_store
from dashboard.web.snapshots import WebSettings

logger = logging.getLogger(__name__)


def get_store() -> Store:
    """The store for this request, opened on first use and closed when the request ends.

    SQLite connections belong to the thread that made them and the dev server runs each request
    in its own thread, so a store lives exactly as long as one request (or one live stream).
    """
    if "chot_store" not in g:
        factory: Callable[[], Store] | None = current_app.config.get("CHOT_STORE_FACTORY")
        g.chot_store = factory() if factory else open_store(current_app.config["CHOT_DATABASE"])
    return g.chot_store


def close_store(_exc: BaseException | None = None) -> None:
    """Teardown hook: release this request's store."""
    store = g.pop("chot_store", None)
    if store is not None:
        store.close()


def settings() -> WebSettings:
    """The snapshot settings from the app config."""
    cfg = current_app.config
    return WebSettings(
        timezone=ZoneInfo(cfg["CHOT_TIMEZONE"]),
        offline_alarm_s=float(cfg["CHOT_OFFLINE_ALARM_S"]),
        trust_max_age_s=float(cfg["CHOT_TRUST_MAX_AGE_S"]),
        clock_alarm=bool(cfg["CHOT_CLOCK_ALARM"]),
        let_through_above_area=float(cfg["CHOT_LET_THROUGH_ABOVE_AREA"]),
        let_through_min_decisions=int(cfg["CHOT_LET_THROUGH_MIN_DECISIONS"]),
    )


def now() -> datetime:
    """The current time (UTC); tests may pin it with CHOT_NOW, a callable."""
    clock = current_app.config.get("CHOT_NOW")
    return clock() if clock else datetime.now(timezone.utc)


def user_scope() -> Scope:
    """What the logged-in user may see: everything for admins, their stored scope otherwise."""
    user = getattr(g, "user", None)
    if user is None:
        return Scope.none()
    return Scope.all() if user.role == "admin" else user.scope
