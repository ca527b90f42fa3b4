"""The officer screen's HTTP server (stdlib, threaded), on loopback only.

Routes: `/` the page, `/static/<file>`, `/state` (JSON), `/events` (server-sent events, one
`data:` line per change plus keep-alive comments), `/preview.mjpg` (MJPEG at a low rate; frames
are encoded only while someone watches). Requests whose Host header is not this loopback
address are refused, so no other web page can read the screen through DNS rebinding.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from scanner.screen.state import ScreenState

logger = logging.getLogger(__name__)

_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_STATIC_FILES = ("index.html", "app.js", "style.css")
_KEEPALIVE_S = 10.0
_BOUNDARY = "chotframe"

PreviewSource = Callable[[], bytes | None]


def url_host(host: str) -> str:
    """The host as written in a URL or Host header (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def _load_static() -> dict[str, bytes]:
    folder = resources.files("scanner.screen") / "static"
    return {name: (folder / name).read_bytes() for name in _STATIC_FILES}


class ScreenServer(ThreadingHTTPServer):
    """HTTP server holding the state, the static files and the preview source."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, state: ScreenState, preview: PreviewSource | None,
                 preview_fps: float) -> None:
        self.state = state
        self.preview = preview
        self.preview_interval = 1.0 / preview_fps
        self.static = _load_static()
        self.watchers = 0
        """Clients watching the camera preview right now."""
        self.stopping = threading.Event()
        self._watch_lock = threading.Lock()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ScreenHandler)
        self.allowed_hosts = {f"{name}:{self.server_address[1]}"
                              for name in (url_host(host), "localhost", "127.0.0.1", "[::1]")}

    def watching(self, delta: int) -> None:
        """Count preview watchers (+1 on connect, -1 on leave)."""
        with self._watch_lock:
            self.watchers += delta


class ScreenHandler(BaseHTTPRequestHandler):
    """One request to the officer screen."""

    server: ScreenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("screen: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.headers.get("Host") not in self.server.allowed_hosts:
            self._send(HTTPStatus.FORBIDDEN, b"wrong host\n", "text/plain; charset=utf-8")
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.static["index.html"], _STATIC_TYPES[".html"])
        elif path.startswith("/static/") and path[8:] in self.server.static:
            name = path[8:]
            self._send(HTTPStatus.OK, self.server.static[name], _STATIC_TYPES["." + name.rsplit(".", 1)[1]])
        elif path == "/state":
            body = json.dumps(self.server.state.snapshot(), ensure_ascii=False).encode()
            self._send(HTTPStatus.OK, body, "application/json; charset=utf-8")
        elif path == "/events":
            self._events()
        elif path == "/preview.mjpg":
            self._preview()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream_headers(self, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _events(self) -> None:
        state = self.server.state
        self._stream_headers("text/event-stream; charset=utf-8")
        seen = -1
        try:
            while not self.server.stopping.is_set() and not state.closed:
                if state.version != seen:
                    snap = state.snapshot()
                    seen = snap["version"]
                    self.wfile.write(b"data: " + json.dumps(snap, ensure_ascii=False).encode() + b"\n\n")
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                state.wait_change(seen, _KEEPALIVE_S)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the page went away; EventSource reconnects by itself

    def _preview(self) -> None:
        source = self.server.preview
        if source is None:
            self._send(HTTPStatus.NOT_FOUND, b"no camera preview\n", "text/plain; charset=utf-8")
            return
        self._stream_headers(f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        self.server.watching(+1)
        try:
            while not self.server.stopping.is_set():
                started = time.monotonic()
                jpeg = source()
                if jpeg is not None:
                    self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                    self.wfile.flush()
                wait = self.server.preview_interval - (time.monotonic() - started)
                self.server.stopping.wait(max(wait, 0.01))
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            self.server.watching(-1)
