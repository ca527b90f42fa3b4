"""The supervisors' web dashboard: a Flask application factory with one blueprint per concern."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from common.typedconfig import secret
from dashboard.config import DEFAULT_OFFLINE_AFTER_S

logger = logging.getLogger(__name__)

# Defaults of every setting the web app reads; `config` (DashboardConfig) and `test_config` override.
DEFAULTS: dict[str, Any] = {
    "CHOT_DATABASE": None,
    "CHOT_STORE_FACTORY": None,
    "CHOT_STORE_POOL_SIZE": 10,  # PostgreSQL connections this process keeps at most  # a callable returning a Store (tests); else open_store(CHOT_DATABASE)
    "CHOT_CONFIG": None,  # the DashboardConfig, for device registration and trust publishing
    "CHOT_TIMEZONE": "Asia/Ho_Chi_Minh",
    "CHOT_OFFLINE_ALARM_S": DEFAULT_OFFLINE_AFTER_S,
    "CHOT_UNIT_REPORT_INTERVAL_S": 60.0,  # the units' status interval: bounds "in flight" (completeness)
    "CHOT_TRUST_MAX_AGE_S": 48 * 3600,
    "CHOT_CLOCK_ALARM": True,
    "CHOT_LET_THROUGH_ABOVE_AREA": 0.3,
    "CHOT_LET_THROUGH_MIN_DECISIONS": 10,
    "CHOT_METRICS_TOKEN": None,
    "CHOT_LOGIN_MAX_FAILURES": 5,  # one account from one address: delays start here (login_throttle)
    "CHOT_LOGIN_WINDOW_S": 24 * 3600,  # failures older than this no longer count (delays run from the last one)
    "CHOT_STREAM_POLL_S": 0.1,  # how often a live stream looks at the store's change marker
    "CHOT_STREAM_REFRESH_S": 5.0,  # re-render even without changes (offline alarms age with time)
    "CHOT_STREAM_MAX_S": 300.0,  # a stream ends after this; EventSource reconnects by itself
    "CHOT_NOW": None,
    # Reverse proxies in front of the app (e.g. 1 behind nginx doing TLS): their X-Forwarded-For
    # gives the client's address, which login throttling counts by. 0 trusts no such header.
    "CHOT_TRUSTED_PROXIES": 0,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_NAME": "chot_session",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # a trust bundle is far smaller
}


def _from_dashboard_config(config: Any) -> dict[str, Any]:
    """The web settings found in a DashboardConfig."""
    web = config.web
    alarms = config.alarms
    out: dict[str, Any] = {
        "CHOT_CONFIG": config,
        "CHOT_DATABASE": config.store_target(),
        "CHOT_STORE_POOL_SIZE": config.store.pool_size,
        "CHOT_TIMEZONE": config.timezone,
        "CHOT_OFFLINE_ALARM_S": alarms.offline_after_s,
        "CHOT_UNIT_REPORT_INTERVAL_S": alarms.unit_report_interval_s,
        "CHOT_TRUST_MAX_AGE_S": alarms.trust_stale_after_h * 3600,
        "CHOT_CLOCK_ALARM": alarms.clock,
        "CHOT_LET_THROUGH_ABOVE_AREA": alarms.let_through_above_area,
        "CHOT_LET_THROUGH_MIN_DECISIONS": alarms.let_through_min_decisions,
        "SESSION_COOKIE_SECURE": web.cookie_secure,
        "CHOT_TRUSTED_PROXIES": web.trusted_proxies,
        "CHOT_METRICS_TOKEN": secret(web.metrics_token, "CHOT_METRICS_TOKEN", "dashboard-metrics-token"),
    }
    key = web.resolved_secret_key()
    if key:
        out["SECRET_KEY"] = key
    return out


def _instance_secret_key(instance: Path) -> str:
    """A random session key kept in the instance folder (mode 0600), made on first start."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key)
    return key


def create_app(config: Any = None, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the dashboard app from a DashboardConfig and/or a dict of Flask settings (tests)."""
    instance_path = None
    if config is not None:
        instance_path = str(Path(config.data_dir) / "web")
    elif test_config and test_config.get("INSTANCE_PATH"):
        instance_path = str(test_config["INSTANCE_PATH"])
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.update(DEFAULTS)
    if config is not None:
        app.config.update(_from_dashboard_config(config))
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret_key(Path(app.instance_path))
    if not app.config["CHOT_DATABASE"] and not app.config["CHOT_STORE_FACTORY"]:
        raise ValueError("the dashboard needs CHOT_DATABASE (a SQLite file or postgresql:// URL) or CHOT_STORE_FACTORY")

    from dashboard.web import audit, auth
    from dashboard.web.state import close_store
    from dashboard.web.templating import install_templating
    from dashboard.web.views import admin, api, exports, metrics, stream
    from dashboard.web.views import pages as views

    app.before_request(auth.load_user)
    app.before_request(auth.require_login)
    app.before_request(auth.check_csrf)
    app.teardown_appcontext(close_store)
    install_templating(app)
    audit.install_refusal_log(app)
    for blueprint in (auth.bp, views.bp, admin.bp, api.bp, stream.bp, metrics.bp, exports.bp):
        app.register_blueprint(blueprint)

    @app.after_request
    def security_headers(response: Any) -> Any:
        """Headers that keep pages from being framed, sniffed, cached or given foreign scripts."""
        # Own scripts and styles only; inline SVG charts need no script.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    proxies = int(app.config["CHOT_TRUSTED_PROXIES"])
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

    logger.info("dashboard web app ready")
    return app
