"""Server-sent events: each page's live part, re-rendered when the store changes, for this user only.

A stream waits for a change of its viewer's checkpoints pushed by the store (PostgreSQL NOTIFY,
`Store.change_feed`), or else polls the store's change marker (one cheap query) every
CHOT_STREAM_POLL_S (SQLite, or a process that lost its listening connection); it renders
the page's partial through the same scoped context as the page, and sends it only when it
differs from what the browser already has. Streams end after CHOT_STREAM_MAX_S; the browser's
EventSource reconnects by itself, which also re-checks the login.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request, stream_with_context

from dashboard.store import StoreUnavailable
from dashboard.web.auth import error_response, roles_required
from dashboard.web.data import snapshots
from dashboard.web.i18n import current_language, translate
from dashboard.web.state import get_store, user_scope
from dashboard.web.views.pages import (
    LIVE_PARTIALS,
    checkpoint_context,
    checkpoint_context_or_abort,
    devices_context,
    overview_context,
)

logger = logging.getLogger(__name__)

bp = Blueprint("stream", __name__, url_prefix="/stream")


def sse_message(event: str, data: dict[str, Any]) -> str:
    """One server-sent event (JSON data keeps it on a single `data:` line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class RenderCache:
    """One rendering shared by every stream that would render the same view at the same marker.

    A view depends only on the page, its arguments, the viewer's role, scope and language, the
    store's state (its marker) and the clock; so ten supervisors of one province watching the
    overview cost one rendering per change, not ten. Entries older than `max_age_s` are redone
    (alarms age with the clock).
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[int, float, str]] = OrderedDict()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._max_entries = max_entries

    def get(self, key: tuple[Any, ...], marker: int, max_age_s: float, render: Callable[[], str | None]) -> str | None:
        """The cached rendering of `key` at `marker`, or a fresh one (None is never cached)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # streams wanting the same view wait for one rendering instead of each doing it
            with self._lock:
                hit = self._entries.get(key)
            if hit is not None and hit[0] == marker and time.monotonic() - hit[1] < max_age_s:
                return hit[2]
            html = render()
            if html is not None:
                with self._lock:
                    self._entries[key] = (marker, time.monotonic(), html)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max_entries:
                        old, _ = self._entries.popitem(last=False)
                        self._key_locks.pop(old, None)
            return html


def live_stream(page: str, view_key: tuple[Any, ...], render: Callable[[], str | None]) -> Response:
    """A text/event-stream of `page`'s live part; `render` returns None once access is gone.

    `view_key` names what `render` shows apart from the viewer (page arguments); the viewer's
    role, scope and language are added here, so views are shared only between equal viewers.
    """
    cfg = current_app.config
    poll_s = float(cfg["CHOT_STREAM_POLL_S"])
    refresh_s = float(cfg["CHOT_STREAM_REFRESH_S"])
    max_s = float(cfg["CHOT_STREAM_MAX_S"])
    cache: RenderCache = current_app.extensions.setdefault("chot_render_cache", RenderCache())
    store = get_store()
    username = g.user.username

    def events() -> Iterator[str]:
        yield "retry: 1000\n\n"
        try:
            yield from updates()
        except StoreUnavailable as e:
            # The database went away: end the stream cleanly; the browser tries again in 3 s
            # (a restart is over by then, and a stream already waited for the pool's timeout);
            # while the store stays down it gets the 503, and the page's script waits 15 s.
            logger.warning("live stream of %s ended: %s", page, e)
            yield "retry: 3000\n\n"
            yield sse_message("unavailable", {"page": page})

    def updates() -> Iterator[str]:
        # Pushed (PostgreSQL NOTIFY): sleep until a change in this viewer's checkpoints; else, or
        # while the feed has lost its connection, poll the store's change marker.
        feed = store.change_feed()
        try:
            yield from loop(feed)
        finally:
            if feed is not None:
                for s in subs:
                    s.close()

    subs: list[Any] = []

    def watch(feed: Any) -> None:
        """(Re)subscribe for the viewer's current scope: admins everything, others their checkpoints."""
        for s in subs:
            s.close()
        subs.clear()
        scope = user_scope()
        places: list[str] | None
        if page == "checkpoint" and view_key:
            places = [str(view_key[0])]  # its access was checked before the stream began
        else:
            places = None if scope.everything else [c.id for c in store.list_checkpoints(scope)]
        subs.append(feed.subscribe(places))

    def loop(feed: Any) -> Iterator[str]:
        deadline = time.monotonic() + max_s
        last_marker: int | None = None
        last_html: str | None = None
        last_render = 0.0
        gap_s = poll_s
        if feed is not None:
            watch(feed)
        while time.monotonic() < deadline:
            pushed = feed is not None and feed.listening
            marker = feed.marker if pushed else store.change_marker()
            refresh = time.monotonic() - last_render >= refresh_s
            if marker != last_marker or refresh:
                if refresh:
                    # Re-read the account now and then: a removed user or changed scope takes effect.
                    g.user = store.get_user(username)
                    if g.user is None:
                        yield sse_message("denied", {"page": page})
                        return
                    if feed is not None:
                        watch(feed)
                key = (page, *view_key, g.user.role, tuple(user_scope().entries()), current_language())
                started = time.monotonic()
                html = cache.get(key, marker, refresh_s, render)
                if html is None:
                    yield sse_message("denied", {"page": page})
                    return
                last_marker, last_render = marker, time.monotonic()
                # A slow rendering (a busy store) spaces the next one out: at most half a core per view.
                gap_s = max(poll_s, last_render - started)
                if html != last_html:
                    last_html = html
                    yield sse_message("update", {"page": page, "marker": marker, "html": html})
                elif refresh:
                    yield ": keep-alive\n\n"  # lets a closed connection surface as an error
            if feed is not None and feed.listening:
                subs[0].wait(min(last_render + refresh_s, deadline) - time.monotonic())
                time.sleep(max(0.0, last_render + gap_s - time.monotonic()))  # at most one rendering per gap
            else:
                time.sleep(gap_s)

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

    return live_stream("overview", tuple(sorted(args.items())), render)


@bp.get("/checkpoint/<checkpoint_id>")
def checkpoint(checkpoint_id: str) -> Any:
    """Live view of one checkpoint (403 outside the scope, 404 if none, before any data is sent)."""
    checkpoint_context_or_abort(checkpoint_id)

    def render() -> str | None:
        context = checkpoint_context(checkpoint_id)
        return None if context is None else render_template(LIVE_PARTIALS["checkpoint"], **context)

    return live_stream("checkpoint", (checkpoint_id,), render)


@bp.get("/devices")
@roles_required("admin", "province_admin", "supervisor")
def devices() -> Any:
    """Live device health and alarms."""

    def render() -> str | None:
        if g.user.role not in ("admin", "province_admin", "supervisor"):
            return None
        return render_template(LIVE_PARTIALS["devices"], **devices_context())

    return live_stream("devices", (), render)
