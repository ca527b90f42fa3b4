"""Per-request access to the store, the settings and the clock of the running app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, g

from dashboard.scope import Scope
from dashboard.store import Store, open_store
from dashboard.web.data.snapshots import WebSettings

logger = logging.getLogger(__name__)


_shared_lock = threading.Lock()


def get_store() -> Store:
    """The store for this request.

    SQLite connections belong to the thread that made them and the server runs each request in
    its own thread, so a SQLite store lives exactly as long as one request (or one live stream).
    A pooled store (PostgreSQL, `Store.shared`) is opened once per process and kept: opening a
    pool per request would cost a connection each time.
    """
    if "chot_store" not in g:
        shared: Store | None = current_app.extensions.get("chot_shared_store")
        if shared is None:
            with _shared_lock:
                shared = current_app.extensions.get("chot_shared_store")
                if shared is None:
                    store = _open()
                    if not store.shared:
                        g.chot_store = store
                        return store
                    current_app.extensions["chot_shared_store"] = shared = store
        g.chot_store = shared
    return g.chot_store


def _open() -> Store:
    cfg = current_app.config
    factory: Callable[[], Store] | None = cfg.get("CHOT_STORE_FACTORY")
    return factory() if factory else open_store(cfg["CHOT_DATABASE"], pool_size=int(cfg["CHOT_STORE_POOL_SIZE"]))


def close_shared_store(app: Any) -> None:
    """Close the process's pooled store, if one was opened (at the end of serving, or of a test)."""
    store = app.extensions.pop("chot_shared_store", None)
    if store is not None:
        store.close()


def close_store(_exc: BaseException | None = None) -> None:
    """Teardown hook: release this request's store (a shared one stays open for the next)."""
    store = g.pop("chot_store", None)
    if store is not None and not store.shared:
        store.close()


def settings() -> WebSettings:
    """The snapshot settings from the app config."""
    cfg = current_app.config
    return WebSettings(
        timezone=ZoneInfo(cfg["CHOT_TIMEZONE"]),
        offline_alarm_s=float(cfg["CHOT_OFFLINE_ALARM_S"]),
        unit_report_interval_s=float(cfg["CHOT_UNIT_REPORT_INTERVAL_S"]),
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
