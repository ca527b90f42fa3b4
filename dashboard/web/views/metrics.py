"""Prometheus `/metrics` (text format 0.0.4): verdict counts and unit health, no personal data.

Protected by a bearer token from the config (`CHOT_METRICS_TOKEN`) for the scraper, or by an
admin's login for a person looking.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from dashboard.scope import Scope
from dashboard.web.auth import error_response
from dashboard.web.i18n import translate
from dashboard.web.state import get_store, now

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _label(value: object) -> str:
    """A label value escaped as the text format requires."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)
    return lines


def render_metrics() -> str:
    """The metrics page for the whole country (the scraper is trusted like an admin)."""
    store = get_store()
    everything = Scope.all()
    at = now()
    checkpoints = {c.id: c for c in store.list_checkpoints(everything)}
    # Until tomorrow: a unit whose clock runs a little ahead is still counted.
    by_checkpoint = store.totals_by(everything, EPOCH, at + timedelta(days=1), "checkpoint")
    verdicts = []
    for group in by_checkpoint:
        cp = checkpoints.get(group.key)
        province = cp.province if cp else ""
        for result in ("green", "yellow", "red"):
            labels = _labels(checkpoint=group.key, province=province, result=result)
            verdicts.append((labels, float(getattr(group.counts, result))))
    decisions = []
    for group in by_checkpoint:
        cp = checkpoints.get(group.key)
        province = cp.province if cp else ""
        for kind in ("decision", "manual"):
            labels = _labels(checkpoint=group.key, province=province, kind=kind)
            decisions.append((labels, float(getattr(group.counts, kind))))
    devices = store.list_devices(everything)
    lines: list[str] = []
    lines += _family("chot_verdicts_total", "counter", "Verdicts stored, by checkpoint and result.", verdicts)
    lines += _family("chot_decisions_total", "counter",
                     "Officer decisions stored, by checkpoint and kind (decision after a scan, manual check).",
                     decisions)
    lines += _family("chot_device_online", "gauge", "1 if the unit's latest status says online.",
                     ((_labels(device=d.id, checkpoint=d.checkpoint), 1.0 if d.online else 0.0) for d in devices))
    for name, attr, help_text in (
        ("chot_device_backlog", "backlog", "Verdicts waiting in the unit's outbox."),
        ("chot_device_trust_version", "trust_version", "Trust bundle version the unit runs."),
        ("chot_device_trust_age_seconds", "trust_age_s", "Age of the unit's trust bundle when it reported."),
        ("chot_device_camera_fps", "fps", "Camera frames per second."),
        ("chot_device_temperature_celsius", "temperature_c", "SoC temperature."),
        ("chot_device_uptime_seconds", "uptime_s", "Seconds since the unit started."),
        ("chot_device_wrong_pins_hour", "pin_wrong_hour", "Wrong officer PINs in the hour before the unit's status."),
        ("chot_device_wrong_pins", "pin_wrong_total", "Wrong officer PINs on the unit since it was set up."),
        ("chot_device_pin_lockouts", "pin_lockouts", "Times wrong PINs locked the unit's officer desk."),
    ):
        samples = [(_labels(device=d.id, checkpoint=d.checkpoint), float(getattr(d, attr)))
                   for d in devices if getattr(d, attr) is not None]
        lines += _family(name, "gauge", help_text, samples)
    lines += _family("chot_device_last_seen_timestamp_seconds", "gauge", "When the unit was last heard from.",
                     ((_labels(device=d.id, checkpoint=d.checkpoint), d.last_seen.timestamp())
                      for d in devices if d.last_seen))
    lines += _family("chot_store_change_marker", "gauge", "Grows with every stored event or status.",
                     [("", float(store.change_marker()))])
    live = live_updates(store)
    lines += _family("chot_live_updates_pushed", "gauge",
                     "1 while this web process hears changes pushed by the store; 0 while its live pages poll.",
                     [("", 1.0 if live["mode"] == "push" else 0.0)])
    return "\n".join(lines) + "\n"


def _authorised() -> bool:
    token = current_app.config.get("CHOT_METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), str(token).encode())
    user = g.get("user")
    return user is not None and user.role == "admin"


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus metrics, for the configured bearer token or a logged-in admin."""
    if not _authorised():
        resp = error_response(401 if g.get("user") is None else 403, translate("metrics_forbidden"))
        resp.headers["WWW-Authenticate"] = 'Bearer realm="chot"'
        return resp
    # content_type, not mimetype: Flask appends "; charset=utf-8" to a mimetype, which would say it twice.
    return Response(render_metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")


def live_updates(store: Any) -> dict[str, Any]:
    """How this process's live pages learn of changes: pushed by the store, or polling it (and why)."""
    feed = store.change_feed()
    if feed is None:
        return {"mode": "poll", "detail": "the store pushes nothing (SQLite): live pages read its change marker"}
    if feed.listening:
        return {"mode": "push", "detail": None}
    return {"mode": "poll", "detail": f"{feed.problem}; retrying every {feed.retry_s:g} s"}


@bp.get("/healthz")
def health() -> Any:
    """This web process's health for an operator or a probe (bearer token or an admin login):
    the store reachable, and whether live pages are pushed or fall back to polling."""
    if not _authorised():
        return error_response(401 if g.get("user") is None else 403, "health needs a bearer token or an admin login")
    store = get_store()
    store.change_marker()  # reachable (StoreUnavailable gives the 503 page)
    return {"store": "ok", "live_updates": live_updates(store)}
