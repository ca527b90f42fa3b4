"""The supervisors' pages: overview, one checkpoint, devices with their health and alarms.

Each page has a live part (a partial template) that the stream re-renders with the same
context function, so the first page load and every live update show the same thing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, g, render_template, request, url_for
from markupsafe import Markup

from dashboard.scope import Scope
from dashboard.web.data import snapshots, tilemap
from dashboard.web.auth import error_response, roles_required
from dashboard.web.data.charts import ChartBar, timeseries_svg
from dashboard.web.i18n import translate
from dashboard.web.state import get_store, now, settings, user_scope

logger = logging.getLogger(__name__)

bp = Blueprint("views", __name__)

# Query arguments of the overview kept in its links, downloads and live stream.
PAGE_ARGS = ("from", "to", "map", "trend", "area")
# page name -> the partial template holding its live part
LIVE_PARTIALS: dict[str, str] = {
    "overview": "_overview_live.html",
    "checkpoint": "_checkpoint_live.html",
    "devices": "_devices_live.html",
}


def chart_markup(data: Mapping[str, Any]) -> Markup:
    """The SVG chart of an overview snapshot, labels in the reader's language."""
    bars = [ChartBar(b["label"], b["green"], b["yellow"], b["red"]) for b in data["timeseries"]["buckets"]]
    legend = {r: translate(r) for r in ("green", "yellow", "red")}
    return timeseries_svg(bars, legend, translate("chart_title"))


def sees_officers() -> bool:
    """Per-officer decision counts are for supervisors and admins, in their scope."""
    user = g.get("user")
    return user is not None and user.role in ("admin", "province_admin", "supervisor")


def overview_context(args: Mapping[str, str], scope: Scope | None = None) -> dict[str, Any]:
    """Everything the overview shows for the period in `args` (raises PeriodError), for the
    user's scope or a narrower `scope` already checked against it."""
    cfg = settings()
    at = now()
    period = snapshots.parse_period(args.get("from"), args.get("to"), cfg, at)
    if scope is None and args.get("area"):
        # An area asked for narrows the view, or is refused (403) outside the user's scope: the
        # same answer as the exports and the report give, never silently the whole scope instead.
        # Imported here: reports builds on snapshots, as this module does.
        from dashboard.web.data.reports import parse_area

        scope = parse_area(args.get("area"), user_scope(), get_store()).scope
    trend_days = 30 if args.get("trend") == "30" else 7
    data = snapshots.overview(get_store(), user_scope() if scope is None else scope, cfg, period, at,
                              officers=sees_officers(), trend_days=trend_days)
    page_args = {k: v for k, v in args.items() if k in PAGE_ARGS}
    return {"data": data, "chart": chart_markup(data), "map": tilemap.map_markup(data, args.get("map")),
            "page_args": page_args}


def checkpoint_context(checkpoint_id: str) -> dict[str, Any] | None:
    """Everything one checkpoint's page shows, or None when it lies outside the user's scope."""
    data = snapshots.checkpoint_view(get_store(), user_scope(), checkpoint_id, settings(), now(),
                                     officers=sees_officers())
    return None if data is None else {"data": data}


def checkpoint_context_or_abort(checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint's context; else 404 when the user's scope would cover it, 403 otherwise.

    A checkpoint that does not exist is "not found" only to someone who could see it if it did
    (the whole country, or that checkpoint by name); to anyone else the answer is the same 403
    as for an existing checkpoint outside their scope, so nothing leaks about what exists.
    """
    context = checkpoint_context(checkpoint_id)
    if context is not None:
        return context
    scope = user_scope()
    if scope.everything or checkpoint_id in scope.checkpoints:
        abort(404)
    abort(403)


def devices_context() -> dict[str, Any]:
    """Every unit in scope with its health and alarms."""
    return {"data": snapshots.devices_view(get_store(), user_scope(), settings(), now())}


@bp.route("/")
def overview() -> Any:
    """Today's and a period's totals, rates by province and checkpoint, chart, reasons, alarms."""
    try:
        context = overview_context(request.args)
    except snapshots.PeriodError as e:
        return error_response(400, f"{translate('bad_period')} {e}")
    return render_template(
        "overview.html",
        live_partial=LIVE_PARTIALS["overview"],
        stream_url=url_for("stream.overview", **context["page_args"]),
        checkpoints=snapshots.checkpoints_list(get_store(), user_scope()),
        **context,
    )


@bp.route("/provinces/<code>")
def province(code: str) -> Any:
    """One province's overview (its checkpoints), for users whose scope holds the whole province."""
    scope = user_scope()
    if not (scope.everything or code in scope.provinces):
        abort(403)
    try:
        context = overview_context(request.args, Scope.of(provinces=[code]))
    except snapshots.PeriodError as e:
        return error_response(400, f"{translate('bad_period')} {e}")
    return render_template(
        "overview.html",
        live_partial=LIVE_PARTIALS["overview"],
        stream_url=None,
        province=code,
        checkpoints=snapshots.checkpoints_list(get_store(), Scope.of(provinces=[code])),
        **context,
    )


@bp.route("/checkpoints/<checkpoint_id>")
def checkpoint(checkpoint_id: str) -> Any:
    """One checkpoint: its units, live counts, recent results (403 outside the scope, 404 if none)."""
    context = checkpoint_context_or_abort(checkpoint_id)
    return render_template(
        "checkpoint.html",
        live_partial=LIVE_PARTIALS["checkpoint"],
        stream_url=url_for("stream.checkpoint", checkpoint_id=checkpoint_id),
        **context,
    )


@bp.route("/devices")
@roles_required("admin", "province_admin", "supervisor")
def devices() -> Any:
    """Units in scope: online or offline, last seen, software, trust, backlog, clock, camera, heat."""
    return render_template(
        "devices.html",
        live_partial=LIVE_PARTIALS["devices"],
        stream_url=url_for("stream.devices"),
        **devices_context(),
    )
