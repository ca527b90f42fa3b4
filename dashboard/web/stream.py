"""Server-sent events: each page's live part, re-rendered when the store changes, for this user only.

A stream polls the store's change marker (one cheap query) every CHOT_STREAM_POLL_S, renders
the page's partial through the same scoped context as the page, and sends it only when it
differs from what the browser already has. Streams end after CHOT_STREAM_MAX_S; the browser's
EventSource reconnects by itself, which also re-checks the login.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request, stream_with_context

from dashboard.web import snapshots
from dashboard.web.auth import error_response, roles_required
from dashboard.web.i18n import translate
from dashboard.web.state import get_store
from dashboard.web.views import LIVE_PARTIALS, checkpoint_context, devices_context, overview_context

logger = logging.getLogger(__name__)

bp = Blueprint("stream", __name__, url_prefix="/stream")


def sse_message(event: str, data: dict[str, Any]) -> str:
    """One server-sent event (JSON data keeps it on a single `data:` line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def live_stream(page: str, render: Callable[[], str | None]) -> Response:
    """A text/event-stream of `page`'s live part; `render` returns None once access is gone."""
    cfg = current_app.config
    poll_s = float(cfg["CHOT_STREAM_POLL_S"])
    refresh_s = float(cfg["CHOT_STREAM_REFRESH_S"])
    max_s = float(cfg["CHOT_STREAM_MAX_S"])
    store = get_store()
    username = g.user.username

    def events() -> Iterator[str]:
        yield "retry: 1000\n\n"
        deadline = time.monotonic() + max_s
        last_marker: int | None = None
        last_html: str | None = None
        last_render = 0.0
        while time.monotonic() < deadline:
            marker = store.change_marker()
            if marker != last_marker or time.monotonic() - last_render >= refresh_s:
                if time.monotonic() - last_render >= refresh_s:
                    # Re-read the account now and then: a removed user or changed scope takes effect.
                    g.user = store.get_user(username)
                    if g.user is None:
                        yield sse_message("denied", {"page": page})
                        return
                html = render()
                if html is None:
                    yield sse_message("denied", {"page": page})
                    return
                last_marker, last_render = marker, time.monotonic()
                if html != last_html:
                    last_html = html
                    yield sse_message("update", {"page": page, "marker": marker, "html": html})
                else:
                    yield ": keep-alive\n\n"  # lets a closed connection surface as an error
            time.sleep(poll_s)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return Response(stream_with_context(events()), mimetype="text/event-stream", headers=headers)


@bp.get("/overview")
def overview() -> Any:
    """Live overview for the period in the query (`from`, `to`)."""
    args = dict(request.args)
    try:
        overview_context(args)  # refuse a bad period now, with a reason, not inside the stream
    except snapshots.PeriodError as e:
        return error_response(400, f"{translate('bad_period')} {e}")

    def render() -> str:
        return render_template(LIVE_PARTIALS["overview"], **overview_context(args))

    return live_stream("overview", render)


@bp.get("/checkpoint/<checkpoint_id>")
def checkpoint(checkpoint_id: str) -> Any:
    """Live view of one checkpoint (403 outside the user's scope, before any data is sent)."""
    if checkpoint_context(checkpoint_id) is None:
        abort(403)

    def render() -> str | None:
        context = checkpoint_context(checkpoint_id)
        return None if context is None else render_template(LIVE_PARTIALS["checkpoint"], **context)

    return live_stream("checkpoint", render)


@bp.get("/devices")
@roles_required("admin", "supervisor")
def devices() -> Any:
    """Live device health and alarms."""

    def render() -> str | None:
        if g.user.role not in ("admin", "supervisor"):
            return None
        return render_template(LIVE_PARTIALS["devices"], **devices_context())

    return live_stream("devices", render)
