"""The dashboard's production web server: waitress, with live streams kept apart from pages.

Every live stream (`/stream/...`, server-sent events) holds one server thread for as long as
it is open, up to CHOT_STREAM_MAX_S: a WSGI server iterates a streamed body in the thread that
ran the request, waitress and gunicorn's gthread worker alike. So the server runs
`web.threads` threads for pages plus `web.max_streams` for streams, and `StreamGate` admits at
most `web.max_streams` streams at once: however many supervisors watch, `web.threads` threads
stay free for pages. A stream over the limit is answered at once with an SSE `retry:` that
sends the browser back a little later, instead of taking a page thread.

One process on purpose: logouts (ended session ids), the shared stream renderings and the
login throttle's view of the store live in this process, so pre-forked workers would each
know only part of them.

On SIGTERM the listener closes first, requests in flight get up to `web.shutdown_timeout_s`
to finish, then the open streams are closed (browsers reconnect to the next server by
themselves) and `serve_until` returns.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from dashboard.config import WebConfig

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
# A browser refused a stream comes back after a random pause in this range (seconds), so
# refused browsers do not all return at the same moment.
BUSY_RETRY_S = (15.0, 45.0)
# How often the I/O loop looks at the stop flag (seconds): the latency of a SIGTERM.
TICK_S = 0.2
# Open connections the server accepts: each watching browser holds its stream plus a few
# idle keep-alive connections; past this, new connections wait in the listen backlog.
CONNECTIONS_PER_SLOT = 4
# Largest request body waitress reads: above the app's own MAX_CONTENT_LENGTH (2 MiB, which
# gets the app's readable 413), so only bigger ones are refused here, before being buffered.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Seconds between two "streams at the limit" log lines (each refusal is counted, not logged).
BUSY_LOG_EVERY_S = 60.0

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ServeError(Exception):
    """Base of the web server's errors; `str()` is a reason an operator can act on."""


class ListenError(ServeError):
    """The listen address could not be bound (in use, not permitted, unknown host)."""

    def __init__(self, host: str, port: int, why: str) -> None:
        self.host, self.port, self.why = host, port, why
        super().__init__(f"cannot listen on {host}:{port}: {why}")


@dataclass(frozen=True)
class ServeStats:
    """What the server did: requests answered, streams admitted, refused and cut at the stop."""

    pages: int
    streams: int
    streams_refused: int
    pages_in_flight: int
    streams_open: int


def _busy_body() -> bytes:
    """The whole answer to a stream over the limit: come back later, nothing else."""
    retry_ms = int(random.uniform(*BUSY_RETRY_S) * 1000)
    return f"retry: {retry_ms}\n: the server is at its live-stream limit\n\n".encode()


def _header(headers: list[tuple[str, str]], name: str) -> str:
    name = name.lower()
    return next((value for key, value in headers if key.lower() == name), "")


class _Tracked:
    """A response body that calls `done` once when the server closes it; may stop early on `stop`."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None], stop: threading.Event | None = None) -> None:
        self._body = body
        self._done: Callable[[], None] | None = done
        self._stop = stop

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            yield chunk
            if self._stop is not None and self._stop.is_set():
                return  # shutting down: end the stream at an event boundary

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class StreamGate:
    """WSGI middleware: admits at most `max_streams` event streams and counts requests in flight.

    The app runs first, so login, scope and 403s are decided as usual; only a response the app
    chose to stream counts against the limit. A refused stream keeps the app's status and
    headers (security headers included) and gets a body that tells EventSource when to retry.
    """

    def __init__(self, app: WsgiApp, max_streams: int) -> None:
        self.app = app
        self.max_streams = max_streams
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._pages_in_flight = 0
        self._streams_open = 0
        self._pages = 0
        self._streams = 0
        self._refused = 0
        self._refused_unlogged = 0
        self._last_busy_log = float("-inf")

    def stats(self) -> ServeStats:
        """A snapshot of the counters."""
        with self._lock:
            return ServeStats(self._pages, self._streams, self._refused, self._pages_in_flight, self._streams_open)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            self._pages_in_flight += 1
        held: list[Any] = []
        decided = False

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            if decided:  # the app starts its response while being iterated: pass it straight on
                return start_response(status, headers, exc_info)
            held[:] = [status, headers, exc_info]
            return self._no_write

        try:
            body = self.app(environ, hold)
        except BaseException:
            self._page_done()
            raise
        decided = True
        if not held:
            return _Tracked(body, self._page_done)
        status, headers, exc_info = held
        if not _header(headers, "Content-Type").startswith(EVENT_STREAM):
            start_response(status, headers, exc_info)
            return _Tracked(body, self._page_done)
        if self._admit_stream():
            start_response(status, headers, exc_info)
            return _Tracked(body, self._stream_done, self.stopping)
        close = getattr(body, "close", None)
        try:
            if close is not None:
                close()  # ends the app's generator before it ran: its request context is torn down
        finally:
            self._page_done()
        start_response(status, [(k, v) for k, v in headers if k.lower() != "content-length"], exc_info)
        return [_busy_body()]

    @staticmethod
    def _no_write(data: bytes) -> None:
        # The dashboard app returns its bodies; the legacy write() callable is not offered.
        raise ServeError("this server does not offer WSGI write(); return the body instead")

    def _admit_stream(self) -> bool:
        """Turn the request in flight into an open stream if a slot is free."""
        with self._lock:
            self._pages_in_flight -= 1
            if self._streams_open < self.max_streams and not self.stopping.is_set():
                self._streams_open += 1
                self._streams += 1
                return True
            self._pages_in_flight += 1  # it leaves through _page_done like any other answer
            self._refused += 1
            self._refused_unlogged += 1
            now = time.monotonic()
            if now - self._last_busy_log < BUSY_LOG_EVERY_S:
                return False
            self._last_busy_log, refused, self._refused_unlogged = now, self._refused_unlogged, 0
        logger.warning("live streams at the limit (%d open): %d browser(s) told to retry later; "
                       "raise web.max_streams if this persists", self.max_streams, refused)
        return False

    def _page_done(self) -> None:
        with self._lock:
            self._pages_in_flight -= 1
            self._pages += 1

    def _stream_done(self) -> None:
        with self._lock:
            self._streams_open -= 1


class DashboardServer:
    """The app behind waitress on `host:port`: bound on construction, served by `serve_until`."""

    def __init__(self, app: WsgiApp, web: WebConfig, host: str | None = None, port: int | None = None) -> None:
        self.web = web
        self.gate = StreamGate(app, web.max_streams)
        self._map: dict[int, Any] = {}
        host = host or web.host
        port = web.port if port is None else port
        try:
            server = create_server(
                self.gate, map=self._map, host=host, port=port,
                threads=web.threads + web.max_streams,
                connection_limit=CONNECTIONS_PER_SLOT * (web.threads + web.max_streams),
                asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
                # Keep reading while a request runs, so a browser that leaves a stream is seen at
                # once and the stream's next write ends it (and frees its slot).
                channel_request_lookahead=1,
                ident="chot",
                # Forwarded headers are ProxyFix's job (web.trusted_proxies); without a trusted
                # proxy waitress drops them, so no client can pose as another address.
                clear_untrusted_proxy_headers=web.trusted_proxies == 0,
                expose_tracebacks=False,
                max_request_body_size=MAX_BODY_BYTES,
            )
        except OSError as e:
            raise ListenError(host, port, e.strerror or str(e)) from None
        except ValueError as e:
            raise ListenError(host, port, str(e)) from None
        if not isinstance(server, BaseWSGIServer):  # one host and port make one listening socket
            raise ListenError(host, port, "waitress made several listening sockets")
        self._server = server
        effective_host, effective_port = server.getsockname()  # what waitress's effective_host/port hold
        self.host = str(effective_host)
        self.port = int(effective_port)

    @property
    def url(self) -> str:
        """Where the dashboard answers."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_until(self, stop: threading.Event) -> ServeStats:
        """Serve until `stop` is set, then drain in-flight requests and close; returns the counts."""
        logger.info("serving on %s: %d page threads, up to %d live streams",
                    self.url, self.web.threads, self.web.max_streams)
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=TICK_S, map=self._map, use_poll=True, count=1)
        finally:
            self._shut_down()
        stats = self.gate.stats()
        logger.info("stopped: %d requests answered, %d streams (%d refused, %d closed at the stop)",
                    stats.pages, stats.streams, stats.streams_refused, stats.streams_open)
        return stats

    def _shut_down(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), then close every connection."""
        # Only the listening socket: the server's own close() would also shut the trigger that
        # task threads use to wake this loop, and in-flight responses still need it.
        wasyncore.dispatcher.close(self._server)
        self.gate.stopping.set()
        deadline = time.monotonic() + self.web.shutdown_timeout_s
        while time.monotonic() < deadline and (self.gate.stats().pages_in_flight or self._unsent()):
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        left = self.gate.stats().pages_in_flight
        if left:
            logger.warning("%d request(s) still running after %.0f s: closing their connections",
                           left, self.web.shutdown_timeout_s)
        # Threads leave once their task ends (queued requests are dropped with their
        # connections); a cut stream's thread ends at its next write, or with the process.
        self._server.task_dispatcher.set_thread_count(0)
        wasyncore.close_all(self._map)

    def _unsent(self) -> int:
        """Bytes of finished responses still waiting in connection buffers."""
        return sum(getattr(channel, "total_outbufs_len", 0) for channel in list(self._map.values()))


def serve(app: WsgiApp, web: WebConfig, stop: threading.Event, host: str | None = None,
          port: int | None = None) -> ServeStats:
    """Bind, serve until `stop`, drain and close (for callers that need no URL first)."""
    return DashboardServer(app, web, host, port).serve_until(stop)
